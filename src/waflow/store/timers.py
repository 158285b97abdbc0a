"""Timers: wake a session (or a contact's flow) at a time — waits, reminders, timeouts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from waflow.store.dialect import is_postgres
from waflow.store.tables import timers
from waflow.store.types import as_utc, utcnow


@dataclass(frozen=True, slots=True)
class TimerRecord:
    id: int
    session_id: int | None
    phone_number_id: str
    contact_key: str
    kind: str
    fire_at: datetime
    payload: dict[str, Any]
    state: str
    created_at: datetime
    fired_at: datetime | None


_COLUMNS = [timers.c[name] for name in TimerRecord.__slots__]


def _record(row: Any) -> TimerRecord:
    return TimerRecord(**row._mapping)


class TimerRepository:
    async def schedule(
        self,
        conn: AsyncConnection,
        *,
        phone_number_id: str,
        contact_key: str,
        kind: str,
        fire_at: datetime,
        session_id: int | None = None,
        payload: dict[str, Any] | None = None,
    ) -> int:
        stmt = (
            timers.insert()
            .values(
                session_id=session_id,
                phone_number_id=phone_number_id,
                contact_key=contact_key,
                kind=kind,
                fire_at=as_utc(fire_at),
                payload=payload or {},
                state="pending",
                created_at=utcnow(),
            )
            .returning(timers.c.id)
        )
        return int((await conn.execute(stmt)).scalar_one())

    async def get(self, conn: AsyncConnection, timer_id: int) -> TimerRecord | None:
        row = (await conn.execute(select(*_COLUMNS).where(timers.c.id == timer_id))).first()
        return _record(row) if row else None

    async def cancel(self, conn: AsyncConnection, timer_id: int) -> bool:
        stmt = update(timers).where(timers.c.id == timer_id, timers.c.state == "pending").values(state="cancelled")
        return (await conn.execute(stmt)).rowcount > 0

    async def cancel_for_session(self, conn: AsyncConnection, session_id: int, kind: str | None = None) -> int:
        stmt = update(timers).where(timers.c.session_id == session_id, timers.c.state == "pending")
        if kind is not None:
            stmt = stmt.where(timers.c.kind == kind)
        return (await conn.execute(stmt.values(state="cancelled"))).rowcount

    async def due(self, conn: AsyncConnection, now: datetime | None = None, limit: int = 100) -> list[TimerRecord]:
        """Pending timers whose time has come, earliest first (PostgreSQL: locked, SKIP LOCKED)."""
        stmt = (
            select(*_COLUMNS)
            .where(timers.c.state == "pending", timers.c.fire_at <= as_utc(now or utcnow()))
            .order_by(timers.c.fire_at, timers.c.id)
            .limit(limit)
        )
        if is_postgres(conn):
            stmt = stmt.with_for_update(skip_locked=True)
        return [_record(row) for row in await conn.execute(stmt)]

    async def mark_fired(self, conn: AsyncConnection, ids: Sequence[int], at: datetime | None = None) -> int:
        if not ids:
            return 0
        stmt = (
            update(timers)
            .where(timers.c.id.in_(list(ids)), timers.c.state == "pending")
            .values(state="fired", fired_at=as_utc(at) if at else utcnow())
        )
        return (await conn.execute(stmt)).rowcount
