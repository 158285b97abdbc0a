"""`in_one_hop`: a unit of database work run on SQLite's connection thread in one hand-off."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import aiosqlite
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from waflow.store import NewInboundEvent, Store
from waflow.store.bulk import SuspendedError, in_one_hop
from waflow.store.tables import inbound_events

from .helpers import at, message


def event(key: str) -> NewInboundEvent:
    return NewInboundEvent.from_message(message(key), at(0))


async def stored_keys(store: Store) -> list[str]:
    async with store.read() as conn:
        rows = await conn.execute(select(inbound_events.c.dedup_key).order_by(inbound_events.c.id))
        return [r[0] for r in rows]


async def several_statements(
    store: Store, conn: AsyncConnection, seen: list[threading.Thread], prefix: str = "wamid."
) -> tuple[Any, ...]:
    """Insert, read back, mark done, count: four statements on `conn`, recording the thread they ran on."""
    seen.append(threading.current_thread())
    [first, second] = await store.inbox.insert_events(conn, [event(f"{prefix}a"), event(f"{prefix}b")])
    assert first is not None and second is not None
    seen.append(threading.current_thread())
    record = await store.inbox.get(conn, first)
    done = await store.inbox.mark_done(conn, [first], at(1))
    total = (await conn.execute(select(func.count()).select_from(inbound_events))).scalar_one()
    seen.append(threading.current_thread())
    return first, second, record, done, total


async def test_work_returns_its_result_and_its_writes_commit(store: Store) -> None:
    seen: list[threading.Thread] = []
    async with store.begin() as conn:
        first, second, record, done, total = await in_one_hop(conn, lambda: several_statements(store, conn, seen))
    assert record is not None and record.id == first and record.dedup_key == "msg:wamid.a"
    assert done == 1 and total == 2 and second > first
    assert await stored_keys(store) == ["msg:wamid.a", "msg:wamid.b"]  # committed
    async with store.read() as conn:
        a = await store.inbox.get(conn, first)
        b = await store.inbox.get(conn, second)
    assert a is not None and a.state == "done" and b is not None and b.state == "pending"

    loop_thread = threading.current_thread()
    assert len(seen) == 3
    if store.dialect == "sqlite":
        # driven on the aiosqlite connection's own thread, never on the event loop's
        assert all(t is seen[0] for t in seen)
        assert seen[0] is not loop_thread
    else:
        assert all(t is loop_thread for t in seen)  # PostgreSQL: simply awaited


async def test_sqlite_work_runs_on_the_connections_thread_in_one_hand_off(
    sqlite_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = sqlite_store
    hand_offs = 0
    original = aiosqlite.Connection._execute

    async def counting(self: aiosqlite.Connection, fn: Any, *args: Any, **kwargs: Any) -> Any:
        nonlocal hand_offs
        hand_offs += 1
        return await original(self, fn, *args, **kwargs)

    monkeypatch.setattr(aiosqlite.Connection, "_execute", counting)
    seen: list[threading.Thread] = []
    async with store.begin() as conn:
        raw = await conn.get_raw_connection()
        connection_thread = raw.driver_connection._thread
        before = hand_offs
        await in_one_hop(conn, lambda: several_statements(store, conn, seen))
        one_hop = hand_offs - before
        before = hand_offs
        await several_statements(store, conn, [], "wamid.other.")  # the same work, statement by statement
        per_statement = hand_offs - before
    assert one_hop == 1
    assert per_statement >= 4  # (proves the counter sees the statements' hand-offs)
    assert seen and all(t is connection_thread for t in seen)


async def test_sqlite_work_that_suspends_raises_and_rolls_back(store: Store) -> None:
    reached_after_sleep = False

    async def work(conn: AsyncConnection) -> int:
        nonlocal reached_after_sleep
        await store.inbox.insert_events(conn, [event("wamid.s")])
        await asyncio.sleep(0)  # not the database: the coroutine suspends
        reached_after_sleep = True
        return 1

    if store.dialect == "sqlite":
        with pytest.raises(SuspendedError):
            async with store.begin() as conn:
                await in_one_hop(conn, lambda: work(conn))
        assert not reached_after_sleep  # the suspended work was closed, not resumed
        assert await stored_keys(store) == []  # the caller's transaction rolled back
        # the connection is usable afterwards
        async with store.begin() as conn:
            assert await in_one_hop(conn, lambda: work_without_sleep(store, conn)) == 1
        assert await stored_keys(store) == ["msg:wamid.t"]
    else:
        # PostgreSQL: the work is simply awaited, so suspending is allowed
        async with store.begin() as conn:
            assert await in_one_hop(conn, lambda: work(conn)) == 1
        assert reached_after_sleep
        assert await stored_keys(store) == ["msg:wamid.s"]


async def work_without_sleep(store: Store, conn: AsyncConnection) -> int:
    await store.inbox.insert_events(conn, [event("wamid.t")])
    return 1


class Boom(Exception):
    pass


async def test_an_exception_in_the_work_propagates_unchanged_and_rolls_back(store: Store) -> None:
    boom = Boom("no")

    async def work(conn: AsyncConnection) -> None:
        await store.inbox.insert_events(conn, [event("wamid.x")])
        raise boom

    with pytest.raises(Boom) as info:
        async with store.begin() as conn:
            await in_one_hop(conn, lambda: work(conn))
    assert info.value is boom
    assert await stored_keys(store) == []
    # a database error raised inside the work also comes out as itself
    async with store.begin() as conn:
        await store.inbox.insert_events(conn, [event("wamid.y")])
    with pytest.raises(Exception) as db_error:
        async with store.begin() as conn:
            await in_one_hop(conn, lambda: conn.exec_driver_sql("SELECT * FROM no_such_table"))
    assert "no_such_table" in str(db_error.value)
    assert not isinstance(db_error.value, SuspendedError)
    assert await stored_keys(store) == ["msg:wamid.y"]


def test_an_unclosed_sqlite_store_does_not_keep_the_process_alive(tmp_path: Path) -> None:
    # SQLAlchemy marks the aiosqlite threads it creates as daemons; the store creates its own (OneHopConnection)
    script = (
        "import asyncio\n"
        "from waflow.store import Store\n"
        "async def main():\n"
        f"    store = Store.open({str(tmp_path / 'x.db')!r})\n"
        "    await store.upgrade()\n"
        "    async with store.begin():\n"
        "        pass\n"
        "asyncio.run(main())\n"
    )
    done = subprocess.run([sys.executable, "-c", script], timeout=60, capture_output=True)
    assert done.returncode == 0, done.stderr[-2000:]
