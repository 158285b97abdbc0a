"""Human handoff: while a session is in `handoff` the contact's messages are kept (not routed to the flow);
an agent answers with `agent_reply` (through the outbox, window-aware) and gives the conversation back
with `hand_back` (resume at a node, at the handoff node's `then`, or end)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from waflow.canonical import OutboundMessage
from waflow.engine.runtime import events
from waflow.engine.runtime.contacts import lock_contact_id
from waflow.engine.runtime.errors import ContactOptedOut, NotInHandoff, SessionNotFound, WindowClosed
from waflow.engine.runtime.state import SessionState, load
from waflow.outbox.consent import Consent, refusal
from waflow.store.contacts import ContactRecord
from waflow.store.flows import FlowVersionRepository
from waflow.store.outbox import OutboxRepository
from waflow.store.types import utcnow

outbox = OutboxRepository()
flow_versions = FlowVersionRepository()


async def _in_handoff(conn: AsyncConnection, session_id: int) -> tuple[SessionState, ContactRecord]:
    session = await load(conn, session_id)
    if session is None or session.ended:
        raise SessionNotFound(f"no active session {session_id}")
    contact = await lock_contact_id(conn, session.contact_id)
    session = await load(conn, session_id)
    if session is None or session.ended or contact is None:
        raise SessionNotFound(f"no active session {session_id}")
    if session.state != "handoff":
        raise NotInHandoff(f"session {session_id} is {session.state}, not with an agent")
    return session, contact


async def agent_reply(conn: AsyncConnection, session_id: int, text: str, *, now: datetime | None = None) -> int:
    """Queue an agent's text to the contact of a session in handoff; returns the outbox id.

    Refused with `ContactOptedOut` when the consent rule refuses the contact, with `WindowClosed` when the
    contact has not written for 24 h (only templates may go then).
    """
    if not text.strip():
        raise ValueError("an agent reply needs text")
    session, contact = await _in_handoff(conn, session_id)
    refused = refusal(Consent.of(contact), utcnow())  # the outbox's rule, asked at the door
    if refused is not None:
        raise ContactOptedOut(f"contact {contact.contact_key!r}: {refused}")
    if not contact.window_open(now or utcnow()):
        raise WindowClosed(f"the 24 h window of {contact.contact_key!r} is closed: send a template instead")
    message = OutboundMessage(
        to=contact.wa_id, recipient=None if contact.wa_id else contact.user_id, type="text", content={"body": text}
    )
    return await outbox.enqueue(
        conn,
        contact.phone_number_id,
        message,
        contact_key=contact.contact_key,
        business_initiated=False,
        session_id=session_id,
        node_id=session.current_node,
    )


async def hand_back(
    conn: AsyncConnection, session_id: int, node_id: str | None = None, *, now: datetime | None = None
) -> int | None:
    """Give the conversation back to the flow: resume at `node_id` (default: the handoff node's `then`;
    none: the session ends). Applied by the worker in the contact's order; returns the event id (None when
    the same hand-back was already queued)."""
    session, contact = await _in_handoff(conn, session_id)
    if node_id is not None:
        record = await flow_versions.by_hash(conn, session.flow_id, session.flow_version)
        if record is None or node_id not in record.definition.get("nodes", {}):
            raise ValueError(f"flow {session.flow_id!r} has no node {node_id!r}")
    [event_id] = await events.add(
        conn,
        [
            events.engine_event(
                f"handback:{session_id}:{session.seq}",
                contact.phone_number_id,
                contact.contact_key,
                {"session_id": session_id, "node": node_id},
                now or utcnow(),
            )
        ],
    )
    return event_id
