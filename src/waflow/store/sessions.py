"""Sessions: one conversation state machine per contact (the flow engine's state).

At most one session per contact is not `ended` (partial unique index
`uq_sessions_active_contact_id`): `create` raises `SessionConflict` when one is active.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from waflow.store.dialect import const, locking
from waflow.store.tables import sessions
from waflow.store.types import utcnow

ACTIVE_STATES = ("running", "waiting", "handoff")


class SessionConflict(Exception):
    """The contact already has a session that has not ended."""


@dataclass(frozen=True, slots=True)
class SessionRecord:
    id: int
    contact_id: int
    flow_id: str
    flow_version: str
    state: str
    current_node: str | None
    vars: dict[str, Any]
    waiting_for: str | None
    step_count: int
    started_at: datetime
    updated_at: datetime
    ended_at: datetime | None
    end_reason: str | None


_COLUMNS = [sessions.c[name] for name in SessionRecord.__slots__]


def _record(row: Any) -> SessionRecord:
    return SessionRecord(**row._mapping)


class SessionRepository:
    async def create(
        self,
        conn: AsyncConnection,
        contact_id: int,
        flow_id: str,
        flow_version: str,
        *,
        current_node: str | None = None,
        vars: dict[str, Any] | None = None,
        state: str = "running",
    ) -> SessionRecord:
        """Start a session; raises `SessionConflict` (transaction still usable) if one is active."""
        now = utcnow()
        stmt = (
            sessions.insert()
            .values(
                contact_id=contact_id,
                flow_id=flow_id,
                flow_version=flow_version,
                state=state,
                current_node=current_node,
                vars=vars or {},
                step_count=0,
                started_at=now,
                updated_at=now,
            )
            .returning(*_COLUMNS)
        )
        savepoint = await conn.begin_nested()
        try:
            row = (await conn.execute(stmt)).one()
        except IntegrityError as exc:
            await savepoint.rollback()
            raise SessionConflict(f"contact {contact_id} already has an active session") from exc
        await savepoint.commit()
        return _record(row)

    async def get(self, conn: AsyncConnection, session_id: int) -> SessionRecord | None:
        row = (await conn.execute(select(*_COLUMNS).where(sessions.c.id == session_id))).first()
        return _record(row) if row else None

    async def active_for_contact(
        self, conn: AsyncConnection, contact_id: int, *, lock: bool = False
    ) -> SessionRecord | None:
        """The contact's session that has not ended, if any (`lock`: FOR UPDATE on PostgreSQL)."""
        stmt = select(*_COLUMNS).where(sessions.c.contact_id == contact_id, sessions.c.state != const("ended"))
        if lock:
            stmt = locking(conn, stmt)
        row = (await conn.execute(stmt)).first()
        return _record(row) if row else None

    async def update(
        self,
        conn: AsyncConnection,
        session_id: int,
        *,
        state: str | None = None,
        current_node: str | None = None,
        vars: dict[str, Any] | None = None,
        waiting_for: str | None = None,
        clear_waiting: bool = False,
        steps: int = 0,
    ) -> SessionRecord | None:
        """Change the given fields of an active session (an ended one is left alone: None)."""
        values: dict[str, Any] = {"updated_at": utcnow()}
        if state is not None:
            if state == "ended":
                raise ValueError("use end() to end a session")
            values["state"] = state
        if current_node is not None:
            values["current_node"] = current_node
        if vars is not None:
            values["vars"] = vars
        if waiting_for is not None or clear_waiting:
            values["waiting_for"] = waiting_for
        if steps:
            values["step_count"] = sessions.c.step_count + steps
        stmt = (
            update(sessions)
            .where(sessions.c.id == session_id, sessions.c.state != const("ended"))
            .values(**values)
            .returning(*_COLUMNS)
        )
        row = (await conn.execute(stmt)).first()
        return _record(row) if row else None

    async def end(
        self, conn: AsyncConnection, session_id: int, reason: str, at: datetime | None = None
    ) -> SessionRecord | None:
        """End a session (None if it had already ended)."""
        at = at or utcnow()
        stmt = (
            update(sessions)
            .where(sessions.c.id == session_id, sessions.c.state != const("ended"))
            .values(state="ended", ended_at=at, end_reason=reason, updated_at=at, waiting_for=None)
            .returning(*_COLUMNS)
        )
        row = (await conn.execute(stmt)).first()
        return _record(row) if row else None
