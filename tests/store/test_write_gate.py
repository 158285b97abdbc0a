"""SQLite's in-process write gate (`_WriteGate`): foreground writers first, background ones not starved."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest
from sqlalchemy import func, select

from waflow.store import NewInboundEvent, Store
from waflow.store.store import _WriteGate
from waflow.store.tables import inbound_events

from .helpers import at, message


async def insert(store: Store, key: str, *, background: bool = False) -> None:
    async with store.begin(background=background) as conn:
        await store.inbox.insert_events(conn, [NewInboundEvent.from_message(message(key), at(0))])


async def wait_until(condition: Callable[[], bool], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.005)


async def queued_behind_holder(store: Store, order: list[str], delay_release: float) -> None:
    """Hold the gate, queue a background writer and then a foreground one behind it, release after
    `delay_release` seconds; `order` records who got the gate."""
    gate = store._gate()
    assert gate is not None
    release = asyncio.Event()

    async def holder() -> None:
        async with store.begin():
            order.append("holder")
            await release.wait()

    async def writer(name: str, background: bool) -> None:
        async with store.begin(background=background):
            order.append(name)

    tasks = [asyncio.create_task(holder())]
    await wait_until(lambda: order == ["holder"])
    tasks.append(asyncio.create_task(writer("background", True)))
    await wait_until(lambda: len(gate._back) == 1)
    tasks.append(asyncio.create_task(writer("foreground", False)))
    await wait_until(lambda: len(gate._front) == 1)
    await asyncio.sleep(delay_release)
    release.set()
    await asyncio.wait_for(asyncio.gather(*tasks), 30)


async def test_foreground_writers_go_before_waiting_background_ones(
    sqlite_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the background writer queued first, but has not waited long enough to claim its turn
    monkeypatch.setattr(_WriteGate, "BACKGROUND_MAX_WAIT_S", 3600.0)
    order: list[str] = []
    await queued_behind_holder(sqlite_store, order, 0.0)
    assert order == ["holder", "foreground", "background"]


async def test_a_background_writer_that_waited_long_goes_first(sqlite_store: Store) -> None:
    order: list[str] = []
    await queued_behind_holder(sqlite_store, order, _WriteGate.BACKGROUND_MAX_WAIT_S + 0.15)
    assert order == ["holder", "background", "foreground"]


async def test_background_writer_is_not_starved_by_a_stream_of_foreground_writers(sqlite_store: Store) -> None:
    store = sqlite_store
    duration = 1.5  # the foreground stream; the background writer needs ~BACKGROUND_MAX_WAIT_S (0.05 s)
    stop_at = time.monotonic() + duration
    commits: list[tuple[str, float]] = []  # (who, when)
    background_in: list[float] = []

    async def foreground(n: int) -> None:
        i = 0
        while time.monotonic() < stop_at:
            await insert(store, f"wamid.f{n}.{i}")
            commits.append((f"f{n}", time.monotonic()))
            i += 1

    async def background() -> None:
        await asyncio.sleep(0.2)  # the stream is flowing
        async with store.begin(background=True) as conn:
            background_in.append(time.monotonic())
            await store.inbox.insert_events(conn, [NewInboundEvent.from_message(message("wamid.bg"), at(0))])
        commits.append(("bg", time.monotonic()))

    writers = [asyncio.create_task(foreground(n)) for n in range(4)]
    bg = asyncio.create_task(background())
    await asyncio.wait_for(asyncio.gather(*writers, bg), 60)

    assert background_in, "the background writer never ran"
    entered = background_in[0]
    after = [who for who, when in commits if when > entered and who != "bg"]
    # it got in while the foreground stream was still running, not once it stopped
    assert entered < stop_at, f"background writer waited {entered - (stop_at - duration):.2f} s, until the stream ended"
    assert len(after) >= 4, "no foreground writer committed after the background one got in"
    before = [who for who, when in commits if when <= entered]
    assert len(before) >= 4  # (the stream was saturating the gate when it got in)
    async with store.read() as conn:
        total = (await conn.execute(select(func.count()).select_from(inbound_events))).scalar_one()
    assert total == len(commits)
