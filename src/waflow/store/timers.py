"""Timers: wake a session (or a contact's flow) at a time — waits, reminders, timeouts.

A timer is `pending` until it fires or is cancelled, once (every change is guarded by `state =
'pending'`). Settled timers are only history: nothing reads them back, so the scheduler deletes them
(`sweep_settled`), oldest first and a batch at a time, and the table stays about as large as the set
of pending timers. The newest row is never deleted: on SQLite a rowid is reused after the highest row
goes, and a fired timer's id lives on in its inbox event's dedup key (`engine:timer:<id>`), which a new
timer with the same id would collide with (and never fire).

Every statement that runs per scheduler tick reads a partial index (`ix_timers_pending_fire_at`,
`ix_timers_settled_id`) and writes the state it filters on as a constant (`dialect.const`), so that both
planners can prove the index's WHERE.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from waflow.store.dialect import const, is_postgres, one_of
from waflow.store.tables import TIMER_STATES, timers
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
_PENDING = "pending"
_SETTLED = tuple(state for state in TIMER_STATES if state != _PENDING)


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
        stmt = update(timers).where(timers.c.id == timer_id, timers.c.state == const(_PENDING)).values(
            state="cancelled"
        )
        return (await conn.execute(stmt)).rowcount > 0

    async def cancel_for_session(self, conn: AsyncConnection, session_id: int, kind: str | None = None) -> int:
        stmt = update(timers).where(timers.c.session_id == session_id, timers.c.state == const(_PENDING))
        if kind is not None:
            stmt = stmt.where(timers.c.kind == kind)
        return (await conn.execute(stmt.values(state="cancelled"))).rowcount

    async def any_due(self, conn: AsyncConnection, now: datetime) -> bool:
        """Whether a pending timer's time has come (the scheduler's cheap look before it takes the write lock)."""
        stmt = select(timers.c.id).where(timers.c.state == const(_PENDING), timers.c.fire_at <= as_utc(now)).limit(1)
        return (await conn.execute(stmt)).first() is not None

    async def due(self, conn: AsyncConnection, now: datetime | None = None, limit: int = 100) -> list[TimerRecord]:
        """Pending timers whose time has come, earliest first (PostgreSQL: locked, SKIP LOCKED)."""
        stmt = (
            select(*_COLUMNS)
            .where(timers.c.state == const(_PENDING), timers.c.fire_at <= as_utc(now or utcnow()))
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
            .where(timers.c.id.in_(list(ids)), timers.c.state == const(_PENDING))
            .values(state="fired", fired_at=as_utc(at) if at else utcnow())
        )
        return (await conn.execute(stmt)).rowcount

    async def any_settled(self, conn: AsyncConnection) -> bool:
        """Whether a fired or cancelled timer is left to sweep."""
        # ORDER BY id: the partial index's order, so that PostgreSQL reads it rather than scanning the table
        stmt = select(timers.c.id).where(timers.c.state.in_(one_of(_SETTLED))).order_by(timers.c.id).limit(1)
        return (await conn.execute(stmt)).first() is not None

    async def sweep_settled(self, conn: AsyncConnection, limit: int = 500) -> int:
        """Delete up to `limit` settled timers, oldest first, never the newest row (see the module); returns how
        many went."""
        newest = select(func.max(timers.c.id)).scalar_subquery()
        oldest = (
            select(timers.c.id)
            .where(timers.c.state.in_(one_of(_SETTLED)), timers.c.id < newest)
            .order_by(timers.c.id)
            .limit(limit)
        )
        ids = [int(i) for i in (await conn.execute(oldest)).scalars()]
        if not ids:
            return 0
        # by id, and only rows still settled: nothing sets a settled timer pending again, but the guard is free
        stmt = delete(timers).where(timers.c.id.in_(ids), timers.c.state.in_(one_of(_SETTLED)))
        return (await conn.execute(stmt)).rowcount
