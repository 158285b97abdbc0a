"""Engine functions other parts call in their own transaction: `start_flow`, `end_session`.

They write rows (an engine event, a session's end); the worker does the rest in the contact's order.
"""

from __future__ import annotations

import secrets
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from waflow.canonical import ContactRef
from waflow.engine.flows.definition import FlowDefinition
from waflow.engine.flows.nodes import SENDING_TYPES, ConditionNode, GotoNode, SetNode
from waflow.engine.runtime import events
from waflow.engine.runtime.contacts import lock_contact_id
from waflow.engine.runtime.deploy import FlowCatalog, FlowNotFound
from waflow.engine.runtime.errors import FlowStartRefused
from waflow.engine.runtime.state import load
from waflow.outbox.consent import OPTED_OUT, Consent, refusal
from waflow.store.contacts import ContactRepository
from waflow.store.sessions import SessionRepository
from waflow.store.timers import TimerRepository
from waflow.store.types import utcnow

contacts = ContactRepository()
sessions = SessionRepository()
timers = TimerRepository()


@dataclass(frozen=True, slots=True)
class FlowStart:
    """A queued start: the worker starts the session when it reaches `event_id` in the contact's order."""

    event_id: int
    flow_id: str
    version: int
    contact_id: int


def first_senders(defn: FlowDefinition) -> list[str]:
    """The sending nodes a session could reach first from the start (through set / condition / goto)."""
    out: list[str] = []
    seen: set[str] = set()
    todo = deque([defn.start])
    while todo:
        node_id = todo.popleft()
        if node_id in seen or node_id not in defn.nodes:
            continue
        seen.add(node_id)
        node = defn.nodes[node_id]
        if node.type in SENDING_TYPES:
            out.append(node_id)
        elif isinstance(node, SetNode | GotoNode | ConditionNode):
            todo.extend(t.target for t in node.transitions())
    return out


async def start_flow(
    conn: AsyncConnection,
    phone_number_id: str,
    contact_key: str,
    flow_id: str,
    vars: dict[str, Any] | None = None,
    *,
    now: datetime | None = None,
    catalog: FlowCatalog | None = None,
) -> FlowStart:
    """Start `flow_id` (its active version) for a contact; an active session is replaced.

    Refused (`FlowStartRefused`) when the flow is not deployed, the consent rule refuses the contact
    (`waflow.outbox.consent`: they opted out and this is not a conversation they started since), or the
    24 h window is closed and the flow does not begin with a template.
    """
    now = now or utcnow()
    catalog = catalog or FlowCatalog()
    try:
        deployed = await catalog.active_version(conn, flow_id)
    except FlowNotFound as exc:
        raise FlowStartRefused(str(exc), reason="not_deployed") from None
    contact = await contacts.get(conn, phone_number_id, contact_key)
    if contact is None:
        contact = await contacts.upsert_from_inbound(conn, phone_number_id, ContactRef.from_address(contact_key), None)
    refused = refusal(Consent.of(contact), utcnow())  # the outbox's rule, asked at the door (wall-clock time)
    if refused is not None:
        raise FlowStartRefused(f"contact {contact_key!r}: {refused}", reason=OPTED_OUT)
    if not contact.window_open(now):
        defn = deployed.definition
        senders = first_senders(defn)
        wrong = [s for s in senders if defn.nodes[s].type != "template"]
        if wrong:
            raise FlowStartRefused(
                f"the 24 h window of {contact_key!r} is closed: flow {flow_id!r} must begin with a template node, "
                f"but it can send {', '.join(repr(w) for w in wrong)} ({defn.nodes[wrong[0]].type}) first",
                reason="window_closed",
            )
    [event_id] = await events.add(
        conn,
        [
            events.engine_event(
                f"start:{secrets.token_hex(12)}",
                phone_number_id,
                contact.contact_key,
                {"flow_id": flow_id, "vars": dict(vars or {})},
                now,
            )
        ],
    )
    assert event_id is not None
    return FlowStart(event_id, flow_id, deployed.version, contact.id)


async def end_session(conn: AsyncConnection, session_id: int, reason: str, *, now: datetime | None = None) -> bool:
    """End a session (the admin API's "end conversation"); False when it had already ended."""
    session = await load(conn, session_id)
    if session is None or session.ended:
        return False
    await lock_contact_id(conn, session.contact_id)
    ended = await sessions.end(conn, session_id, reason, now or utcnow())
    if ended is None:
        return False
    await timers.cancel_for_session(conn, session_id)
    return True
