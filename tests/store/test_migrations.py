"""Migrations: from empty on both backends, idempotent, and in step with `tables.py`."""

from __future__ import annotations

import asyncio
import sys

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

from waflow.store import Store, head_revision
from waflow.store.migrate import VERSION_TABLE, run_downgrade
from waflow.store.tables import metadata

TABLES = {
    "contacts",
    "inbound_events",
    "dead_letters",
    "outbound_messages",
    "send_attempts",
    "status_events",
    "sessions",
    "timers",
}


async def test_upgrade_from_empty_creates_schema(store_url: str) -> None:
    store = Store.open(store_url)
    try:
        assert await store.revision() is None
        await store.upgrade()
        assert await store.revision() == head_revision()
        assert await store.is_current()
        async with store.read() as conn:
            names = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
        assert names >= TABLES | {VERSION_TABLE}
    finally:
        await store.close()


async def test_upgrade_is_idempotent_and_keeps_rows(store_url: str) -> None:
    store = Store.open(store_url)
    try:
        await store.upgrade()
        async with store.begin() as conn:
            await store.dead_letters.add(conn, reason="x", body=b"{", headers={})
        await store.upgrade()
        await store.upgrade()
        assert await store.revision() == head_revision()
        async with store.read() as conn:
            assert await store.dead_letters.count(conn) == 1
    finally:
        await store.close()


async def test_concurrent_upgrades_in_one_process(store_url: str) -> None:
    stores = [Store.open(store_url) for _ in range(3)]
    try:
        await asyncio.gather(*(s.upgrade() for s in stores))
        assert await stores[0].revision() == head_revision()
    finally:
        for s in stores:
            await s.close()


async def test_concurrent_upgrades_from_several_processes(store_url: str) -> None:
    code = (
        "import asyncio, sys; from waflow.store import Store\n"
        "async def main():\n"
        "    s = Store.open(sys.argv[1]); await s.upgrade(); await s.close()\n"
        "asyncio.run(main())\n"
    )
    procs = [
        await asyncio.create_subprocess_exec(sys.executable, "-c", code, store_url, stderr=asyncio.subprocess.PIPE)
        for _ in range(3)
    ]
    for proc in procs:
        _, err = await proc.communicate()
        assert proc.returncode == 0, err.decode()
    store = Store.open(store_url)
    try:
        assert await store.revision() == head_revision()
    finally:
        await store.close()


def _diff(conn: Connection) -> list[object]:
    context = MigrationContext.configure(conn, opts={"compare_type": True, "version_table": VERSION_TABLE})
    return list(compare_metadata(context, metadata))


async def test_migrated_schema_matches_tables(store: Store) -> None:
    async with store.read() as conn:
        diff = await conn.run_sync(_diff)
    assert diff == []


async def test_downgrade_to_base_and_back(store: Store) -> None:
    async with store.engine.connect() as conn:
        await conn.run_sync(run_downgrade, "base")
        await conn.commit()
    async with store.read() as conn:
        names = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
    assert not (names & TABLES)
    await store.upgrade()
    async with store.read() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM contacts"))).scalar_one() == 0


async def test_sqlite_pragmas(store: Store) -> None:
    if store.dialect != "sqlite":
        return
    async with store.read() as conn:
        assert (await conn.exec_driver_sql("PRAGMA journal_mode")).scalar_one() == "wal"
        assert (await conn.exec_driver_sql("PRAGMA synchronous")).scalar_one() == 2  # FULL
        assert (await conn.exec_driver_sql("PRAGMA foreign_keys")).scalar_one() == 1
        assert (await conn.exec_driver_sql("PRAGMA busy_timeout")).scalar_one() >= 1000
