"""The scheduler's retention rule: fired and cancelled timers are deleted by its sweep; pending ones stay
and still fire exactly once; the newest row is never deleted (SQLite would reuse its id)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from waflow.engine.runtime.timers import TimerScheduler
from waflow.store import Store
from waflow.store.tables import inbound_events, timers

T0 = datetime(2026, 1, 1, tzinfo=UTC)


async def test_sweep_deletes_settled_timers_and_keeps_pending_ones(store: Store) -> None:
    now = T0
    scheduler = TimerScheduler(store, clock=lambda: now, sweep_every=timedelta(seconds=30))
    async with store.begin() as conn:
        for i in range(3):
            await store.timers.schedule(conn, phone_number_id="1", contact_key=f"c{i}", kind="wait",
                                        fire_at=T0 + timedelta(seconds=1))  # fmt: skip
        gone = await store.timers.schedule(conn, phone_number_id="1", contact_key="x", kind="wait",
                                           fire_at=T0 + timedelta(hours=1))  # fmt: skip
        later = await store.timers.schedule(conn, phone_number_id="1", contact_key="y", kind="wait",
                                            fire_at=T0 + timedelta(hours=2))  # fmt: skip
        assert await store.timers.cancel(conn, gone)
    now = T0 + timedelta(seconds=5)
    assert await scheduler.tick() == 3  # the sweep ran first (nothing fired yet): only the cancelled one went
    now = T0 + timedelta(minutes=1)
    assert await scheduler.tick() == 0  # nothing due; the sweep takes the fired ones
    async with store.read() as conn:
        left = list((await conn.execute(select(timers.c.id, timers.c.state).order_by(timers.c.id))).all())
        fired_events = (await conn.execute(select(func.count()).select_from(inbound_events))).scalar_one()
    assert [tuple(r) for r in left] == [(later, "pending")]
    assert fired_events == 3
    now = T0 + timedelta(hours=3)
    assert await scheduler.tick() == 1  # the pending one still fires, once
    assert await scheduler.tick() == 0
    async with store.read() as conn:
        rows = list((await conn.execute(select(timers.c.id, timers.c.state))).all())
    assert [tuple(r) for r in rows] == [(later, "fired")]  # the newest row stays, so its id is never reused
