"""`Turn`: one event being applied — the transaction, the time, the contact, the message, and the effects.

Effects (outbound messages, timers) are written through the turn so that they land in the same
transaction as the session's new state and the inbox event's `done`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from waflow.canonical import InboundMessage
from waflow.engine.flows.definition import FlowDefinition
from waflow.engine.flows.expressions import ExpressionEngine, make_context
from waflow.engine.runtime.config import EngineConfig
from waflow.engine.runtime.deploy import FlowCatalog
from waflow.engine.runtime.state import SessionBook, SessionState, insert, load_active, save
from waflow.store.contacts import ContactRecord
from waflow.store.tables import outbound_messages
from waflow.store.timers import TimerRepository
from waflow.store.types import utcnow

timers = TimerRepository()


async def flush_outbox(conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    """Write queued outbound rows (the same columns `OutboxRepository.enqueue` writes), in order."""
    if rows:
        await conn.execute(outbound_messages.insert(), rows)
        rows.clear()


class StepError(Exception):
    """A node could not run (bad rendered value, refused request, ...): the session ends with this error."""


@dataclass(frozen=True, slots=True)
class HttpJob:
    """An http node's request, to be made after the transaction that recorded it committed."""

    session_id: int
    contact_id: int
    phone_number_id: str
    contact_key: str
    call_id: str
    node_id: str
    request: dict[str, Any]


@dataclass(slots=True)
class Turn:
    conn: AsyncConnection
    now: datetime
    contact: ContactRecord
    config: EngineConfig
    catalog: FlowCatalog
    expressions: ExpressionEngine
    message: InboundMessage | None = None
    response: dict[str, Any] | None = None  # the last http response, for the rest of this chain
    http_jobs: list[HttpJob] = field(default_factory=list)
    outgoing: list[dict[str, Any]] = field(default_factory=list)  # outbox rows, written by `flush_outbox`
    contact_changed: bool = False  # a command changed the contact (opt-out): re-read it
    # the batch's sessions: preloaded, saves deferred to the batch's write (`batch.write_batch`); None: direct
    book: SessionBook | None = None

    # --- the contact's session ---

    async def active_session(self) -> SessionState | None:
        """The contact's session that has not ended (locked on PostgreSQL)."""
        if self.book is None:
            return await load_active(self.conn, self.contact.id, lock=True)
        return await self.book.active(self.conn, self.contact.id)

    async def save(self, session: SessionState) -> None:
        """Write the session back (deferred to the batch's write when it exists already)."""
        await save(self.conn, session, self.now, self.book)

    async def insert(self, session: SessionState) -> None:
        await insert(self.conn, session, self.now, self.book)

    # --- expressions ---

    def context(self, session: SessionState, defn: FlowDefinition) -> dict[str, Any]:
        c = self.contact
        msg = self.message
        message: dict[str, Any] = {}
        if msg is not None:
            message = {
                "id": msg.message_id,
                "type": msg.type,
                "text": msg.text,
                "payload": msg.payload,
                "timestamp": msg.timestamp.isoformat(),
                "content": msg.content,
                "referral": msg.referral,
            }
        return make_context(
            contact={
                "key": c.contact_key,
                "wa_id": c.wa_id,
                "user_id": c.user_id,
                "name": c.profile_name,
                "phone_number_id": c.phone_number_id,
                "opted_out": c.opted_out,
            },
            vars=session.vars,
            message=message,
            response=self.response,
            flow={
                "id": session.flow_id,
                "version": session.flow_version[:12],
                "node": session.current_node,
                "vars": defn.vars,
                "session_id": session.id,
            },
        )

    def render(self, template: str, session: SessionState, defn: FlowDefinition) -> str:
        return self.expressions.render_text(template, self.context(session, defn))

    # --- effects ---

    @property
    def window_open(self) -> bool:
        return self.contact.window_open(self.now)

    def contact_context(self) -> dict[str, Any]:
        """The expression context of a message outside any flow (global command replies)."""
        c = self.contact
        msg = self.message
        message = {"text": msg.text, "payload": msg.payload, "type": msg.type} if msg is not None else {}
        contact = {"key": c.contact_key, "wa_id": c.wa_id, "name": c.profile_name, "opted_out": c.opted_out}
        return make_context(contact=contact, message=message)

    async def send(
        self, session: SessionState | None, node_id: str | None, type_: str, content: dict[str, Any]
    ) -> None:
        """Queue a message to the contact for this session and node (window-aware).

        The row is written by `flush_outbox` (one multi-row INSERT per batch) before the transaction
        commits, in the order the messages were queued — which is the order they will leave in.
        """
        if session is not None and session.id is None:
            raise RuntimeError("the session must be saved before it sends")
        c = self.contact
        wall = utcnow()
        self.outgoing.append(
            {
                "phone_number_id": c.phone_number_id,
                "contact_key": c.contact_key,
                "to_number": c.wa_id,
                "recipient_user_id": None if c.wa_id else c.user_id,
                "type": type_,
                "content": content,
                "reply_to": None,
                "status": "queued",
                "business_initiated": not self.window_open,
                "fallback_template": None,
                "campaign_id": None,
                "session_id": session.id if session is not None else None,
                "node_id": node_id,
                "due_at": wall,  # wall-clock time, like `OutboxRepository.enqueue` (the engine's clock may be
                "attempts": 0,  # a test's or a replay's)
                "created_at": wall,
                "updated_at": wall,
            }
        )
        if session is not None and node_id is not None:
            sent = session.runtime.setdefault("sent", [])
            if node_id not in sent:
                sent.append(node_id)

    async def schedule(self, session: SessionState, kind: str, after: timedelta, payload: dict[str, Any]) -> int:
        assert session.id is not None
        session.runtime["timers"] = True
        return await timers.schedule(
            self.conn,
            phone_number_id=self.contact.phone_number_id,
            contact_key=self.contact.contact_key,
            kind=kind,
            fire_at=self.now + after,
            session_id=session.id,
            payload={**payload, "seq": session.seq},
        )

    async def cancel_timers(self, session: SessionState) -> None:
        if session.runtime.pop("timers", None) and session.id is not None:
            await timers.cancel_for_session(self.conn, session.id)
