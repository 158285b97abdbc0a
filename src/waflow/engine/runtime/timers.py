"""`TimerScheduler`: turns due timers and expired sessions into engine events for the worker.

A due timer becomes the inbox event `engine:timer:<timer id>` of its contact and is marked fired,
in one transaction (PostgreSQL: timers claimed `FOR UPDATE SKIP LOCKED`, so several schedulers never
fire one twice; the dedup key makes a second insert a no-op anyway). The worker applies it in the
contact's order, like a message. Timers are rows: a restart loses none, and after a restart each
fires once. Idle sessions past `expires_at` become `engine:expire:<session id>:<expiry>` events.

Retention: a fired or cancelled timer is history nobody reads, so every `sweep_every` (by the clock) the
scheduler deletes up to `batch` of them, oldest first (`TimerRepository.sweep_settled`); the timers table
stays about the size of the pending set instead of growing with every wait and timeout ever scheduled.

The clock is injectable (`clock=`), so tests move time without sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import select, text

from waflow.engine.runtime import events
from waflow.engine.runtime.loop import BackgroundLoop
from waflow.engine.runtime.worker import Clock
from waflow.store import Store
from waflow.store.dialect import is_postgres
from waflow.store.inbox import NewInboundEvent
from waflow.store.tables import contacts, sessions
from waflow.store.timers import TimerRepository
from waflow.store.types import utcnow

log = logging.getLogger(__name__)
timers = TimerRepository()


class TimerScheduler(BackgroundLoop):
    task_name = "waflow-timer-scheduler"

    def __init__(
        self,
        store: Store,
        *,
        clock: Clock = utcnow,
        interval: float = 0.2,
        batch: int = 500,
        sweep_every: timedelta = timedelta(seconds=30),
    ) -> None:
        super().__init__()
        self.store = store
        self.clock = clock
        self.interval = interval
        self.batch = batch
        self.sweep_every = sweep_every
        self._last_sweep: datetime | None = None
        self.fired = 0
        self.swept = 0
        self.on_fired: Callable[[], None] | None = None  # events were written: wake the engine worker

    async def run(self) -> None:
        while not self._stopping.is_set():
            try:
                count = await self.tick()
            except Exception:
                log.exception("timer tick failed")
                count = 0
            if count == 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), self.interval)

    async def tick(self, now: datetime | None = None) -> int:
        """Fire what is due at `now` (default: the clock); returns the number of events written."""
        now = now or self.clock()
        await self._maybe_sweep(now)
        if not await self._anything_due(now):
            return 0
        count = await self.fire_timers(now) + await self.expire_sessions(now)
        if count and self.on_fired is not None:
            self.on_fired()
        return count

    async def _anything_due(self, now: datetime) -> bool:
        """Whether a timer is due or a session expired, read without the write lock: a tick usually finds
        nothing, and on SQLite two empty write transactions per tick would still queue for the single
        write lock in front of the inbox, the engine and the dispatcher."""
        async with self.store.read() as conn:
            if await timers.any_due(conn, now):
                return True
            expired = select(sessions.c.id).where(text("state IN ('waiting', 'handoff')"), sessions.c.expires_at <= now)
            return (await conn.execute(expired.limit(1))).first() is not None

    async def _maybe_sweep(self, now: datetime) -> None:
        if self._last_sweep is not None and now - self._last_sweep < self.sweep_every:
            return
        self._last_sweep = now
        try:
            await self.sweep()
        except Exception:  # housekeeping: never let it stop timers from firing
            log.exception("timer sweep failed")

    async def sweep(self) -> int:
        """Delete one batch of settled timers (a read first: on SQLite an empty write would still queue for
        the write lock); returns how many went."""
        async with self.store.read() as conn:
            if not await timers.any_settled(conn):
                return 0
        async with self.store.begin() as conn:
            count = await timers.sweep_settled(conn, self.batch)
        self.swept += count
        return count

    async def fire_timers(self, now: datetime) -> int:
        async with self.store.begin() as conn:
            due = await timers.due(conn, now, self.batch)
            if not due:
                return 0
            await events.add(
                conn,
                [
                    events.engine_event(
                        f"timer:{t.id}",
                        t.phone_number_id,
                        t.contact_key,
                        {"timer_id": t.id, "session_id": t.session_id, "kind": t.kind, **t.payload},
                        now,
                    )
                    for t in due
                ],
            )
            await timers.mark_fired(conn, [t.id for t in due], now)
        self.fired += len(due)
        return len(due)

    async def expire_sessions(self, now: datetime) -> int:
        async with self.store.begin() as conn:
            stmt = (
                select(sessions.c.id, sessions.c.expires_at, contacts.c.phone_number_id, contacts.c.contact_key)
                .join(contacts, contacts.c.id == sessions.c.contact_id)
                .where(text("sessions.state IN ('waiting', 'handoff')"), sessions.c.expires_at <= now)
                .order_by(sessions.c.expires_at)
                .limit(self.batch)
            )
            if is_postgres(conn):
                stmt = stmt.with_for_update(of=sessions, skip_locked=True)
            rows = list(await conn.execute(stmt))
            if not rows:
                return 0
            batch: list[NewInboundEvent] = [
                events.engine_event(
                    f"expire:{r.id}:{int(r.expires_at.timestamp())}",
                    r.phone_number_id,
                    r.contact_key,
                    {"session_id": r.id},
                    now,
                )
                for r in rows
            ]
            ids = await events.add(conn, batch)
        return sum(1 for i in ids if i is not None)
