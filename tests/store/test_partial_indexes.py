"""The hot queries' filters select their partial indexes (`waflow.store.dialect.const` / `one_of`).

SQLite uses a partial index only when the query's WHERE provably implies the index's WHERE, and a
bound parameter proves nothing for `state IN (?, ?)`: every claim of open inbox events was a full
table scan. Here each hot query runs on a real store while its SQL and parameters are captured
(`before_cursor_execute`), and `EXPLAIN QUERY PLAN` of exactly that SQL, with those parameters,
must name the partial index and scan no hot table in full. The filter values must also be written
into the statement's text: PostgreSQL's generic plans of prepared statements have the same blind
spot (checked here with `plan_cache_mode = force_generic_plan`), even where SQLite's planner peeks
at a bound `=` value.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncConnection

from waflow.canonical import ContactRef, EventKind
from waflow.engine.runtime.batch import load_batch
from waflow.engine.runtime.state import load_active
from waflow.store import NewInboundEvent, Store
from waflow.store.testing import sqlite_url
from waflow.store.types import utcnow

from .helpers import PNID, at, message, status, text_out
from .plans import pg_literal

HOT_TABLES = {"inbound_events", "outbound_messages", "sessions"}
OPEN = "IN ('pending', 'failed')"
QUEUED = "= 'queued'"
NOT_ENDED = "!= 'ended'"
WA_ID = "34600111222"
CLAIMABLE = "ix_outbound_messages_claimable"


@dataclass
class Seeded:
    contact_id: int
    contact_key: str


async def seed(store: Store) -> Seeded:
    """Some of everything: open and done inbox events, queued and accepted messages, a contact with an
    active session and one with an ended session."""
    async with store.begin() as conn:
        rows = [NewInboundEvent.from_message(message(f"wamid.m{i}", wa_id=WA_ID), at(i)) for i in range(20)]
        rows += [NewInboundEvent.from_status(status(f"wamid.o{i}", "delivered"), at(i)) for i in range(20)]
        ids = await store.inbox.insert_events(conn, rows)
        await store.inbox.mark_done(conn, [i for i in ids[:10] + ids[20:30] if i is not None])
        contact = await store.contacts.upsert_from_inbound(conn, PNID, ContactRef(wa_id=WA_ID), at(0))
        other = await store.contacts.upsert_from_inbound(conn, PNID, ContactRef(wa_id="34600999888"), at(0))
        ended = await store.sessions.create(conn, other.id, "flow", "1")
        await store.sessions.end(conn, ended.id, "done")
        await store.sessions.create(conn, contact.id, "flow", "1")
        for n in range(10):
            oid = await store.outbox.enqueue(
                conn,
                PNID,
                text_out(f"m{n}"),
                contact_key=contact.contact_key,
                business_initiated=False,
                due_at=utcnow() - timedelta(seconds=1),
            )
            if n < 3:
                await store.outbox.record_accepted(conn, oid, f"wamid.out{n}", at(0))
    return Seeded(contact.id, contact.contact_key)


@pytest.fixture
async def seeded(store: Store) -> tuple[Store, Seeded]:
    """The shared `store` (SQLite and PostgreSQL), seeded."""
    return store, await seed(store)


@pytest.fixture
async def sqlite_seeded(tmp_path: Path) -> AsyncIterator[tuple[Store, Seeded]]:
    store = Store.open(sqlite_url(tmp_path))
    await store.upgrade()
    try:
        yield store, await seed(store)
    finally:
        await store.close()


@contextlib.contextmanager
def captured(store: Store) -> Iterator[list[tuple[str, Any]]]:
    """The (SQL, parameters) of every statement `store` sends to SQLite inside the block."""
    statements: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, sql: str, params: Any, _context: Any, executemany: bool) -> None:
        if not executemany and sql.lstrip().upper().startswith(("SELECT", "UPDATE", "WITH")):
            statements.append((sql, params))

    event.listen(store.engine.sync_engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(store.engine.sync_engine, "before_cursor_execute", record)


def sqlite_plan(store: Store, sql: str, params: Any) -> list[str]:
    """`EXPLAIN QUERY PLAN` of `sql` with `params`, on a plain sqlite3 connection to the store's file."""
    db = sqlite3.connect(store.url.database or "")
    try:
        return [row[3] for row in db.execute("EXPLAIN QUERY PLAN " + sql, params or ())]
    finally:
        db.close()


async def postgres_generic_plan(store: Store, sql: str, params: Any) -> list[str]:
    """The plan PostgreSQL uses for `sql` as a prepared statement once it goes generic (the parameters
    unknown at planning), with sequential scans disabled: on these small tables a seq scan would win
    anyway, so what is checked is whether the partial index is usable at all."""
    async with store.engine.connect() as conn:
        await conn.exec_driver_sql("SET LOCAL plan_cache_mode = force_generic_plan")
        await conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
        await conn.exec_driver_sql(f"PREPARE waflow_hot AS {sql}")
        try:
            args = ", ".join(pg_literal(v) for v in params)
            explain = f"EXPLAIN EXECUTE waflow_hot({args})" if args else "EXPLAIN EXECUTE waflow_hot"
            rows = await conn.exec_driver_sql(explain)
            return [row[0] for row in rows]
        finally:
            await conn.exec_driver_sql("DEALLOCATE waflow_hot")
            await conn.rollback()


def full_scans(plan: list[str]) -> list[str]:
    """Plan lines that read a hot table whole: SQLite `SCAN t` (`SCAN t USING INDEX ...` reads an
    index), PostgreSQL `Seq Scan on t`."""
    scans = []
    for line in plan:
        words = line.split()
        if line.startswith("SCAN ") and words[1] in HOT_TABLES and "USING" not in line:
            scans.append(line)
        elif "Seq Scan on" in line and words[words.index("Seq") + 3] in HOT_TABLES:
            scans.append(line.strip())
    return scans


async def plan_of(store: Store, sql: str, params: Any) -> list[str]:
    if store.dialect == "sqlite":
        return sqlite_plan(store, sql, params)
    return await postgres_generic_plan(store, sql, params)


Query = Callable[[Store, AsyncConnection, Seeded], Awaitable[Any]]


@dataclass(frozen=True)
class Case:
    run: Query
    indexes: tuple[str, ...]  # partial indexes the plan must use (each of them; "a|b": a or b)
    literal: str  # the filter, as it must appear in the statement's text
    rows: int | None = None  # how many rows the query returns on the seeded data (None: not checked)
    # the statements checked, when the call sends several (those on outbound_messages; the others read the
    # small counter and campaign tables): each must scan nothing whole, and together use `indexes`
    pick: str | None = None
    # PostgreSQL, when it differs: on these few unanalyzed rows its costs pick any index of the outbox
    # (none scans the table); which one it takes at a real size is checked on an analyzed big store
    # (`test_plans_outbox.py`)
    pg_indexes: tuple[str, ...] | None = None


def _one_hour() -> timedelta:
    return timedelta(hours=1)


CASES: dict[str, Case] = {
    "inbox.claim_payloads": Case(
        lambda s, c, _: s.inbox.claim_payloads(c, EventKind.STATUS, limit=100),
        ("ix_inbound_events_open_by_kind",),
        OPEN,
        rows=10,
    ),
    "inbox.claim_pending(kind)": Case(
        lambda s, c, _: s.inbox.claim_pending(c, EventKind.MESSAGE, limit=100),
        ("ix_inbound_events_open_by_kind",),
        OPEN,
        rows=10,
    ),
    "inbox.pending_for_contact": Case(
        lambda s, c, seed: s.inbox.pending_for_contact(c, PNID, seed.contact_key, limit=100),
        ("ix_inbound_events_open_by_contact",),
        OPEN,
        rows=20,  # its messages and the statuses to it
    ),
    # (revision 0006) one probe per lane — a number's rows of no campaign, each running campaign's — of the
    # claimable heads; the numbers come from the counters when not given
    "outbox.any_due": Case(
        lambda s, c, _: s.outbox.any_due(c),
        (CLAIMABLE,),
        QUEUED,
        pick="FROM outbound_messages",
        pg_indexes=(),
    ),
    "outbox.any_due(numbers)": Case(
        lambda s, c, _: s.outbox.any_due(c, phone_number_ids=[PNID]),
        (CLAIMABLE,),
        QUEUED,
        pick="FROM outbound_messages",
        pg_indexes=(),
    ),
    # the lanes' picks (then the UPDATE of the picked ids, by primary key)
    "outbox.claim_due": Case(
        lambda s, c, _: s.outbox.claim_due(c, "test", limit=10, lease=_one_hour()),
        (CLAIMABLE,),
        QUEUED,
        rows=1,
        pick="FROM outbound_messages \nWHERE",
        pg_indexes=(),
    ),
    # (revision 0010) the claim's UPDATE probes for an earlier row of the recipient still in flight: only leased
    # rows, never the recipient's whole history
    "outbox.claim_due(in flight)": Case(
        lambda s, c, _: s.outbox.claim_due(c, "test", limit=10, lease=_one_hour()),
        ("ix_outbound_messages_in_flight",),
        "claimed_until IS NOT NULL",
        rows=1,
        pick="AS in_flight",
        pg_indexes=(),
    ),
    "outbox.claim_due(numbers)": Case(
        lambda s, c, _: s.outbox.claim_due(c, "test", limit=10, lease=_one_hour(), phone_number_ids=[PNID]),
        (CLAIMABLE,),
        QUEUED,
        rows=1,
        pick="FROM outbound_messages \nWHERE",
        pg_indexes=(),
    ),
    "engine.load_active": Case(
        lambda _, c, seed: load_active(c, seed.contact_id),
        ("uq_sessions_active_contact_id",),
        NOT_ENDED,
    ),
    "sessions.active_for_contact": Case(
        lambda s, c, seed: s.sessions.active_for_contact(c, seed.contact_id),
        ("uq_sessions_active_contact_id",),
        NOT_ENDED,
    ),
    "engine.load_batch": Case(
        lambda _, c, __: load_batch(c, 100),
        ("ix_inbound_events_engine_open", "uq_sessions_active_contact_id"),
        NOT_ENDED,
        rows=10,
    ),
}


@pytest.mark.parametrize("name", list(CASES))
async def test_hot_query_uses_its_partial_index(seeded: tuple[Store, Seeded], name: str) -> None:
    store, seed = seeded
    case = CASES[name]
    with captured(store) as statements:
        async with store.begin() as conn:
            result = await case.run(store, conn, seed)
    if case.rows is not None:
        rows = result.events if hasattr(result, "events") else result
        assert len(rows) == case.rows, "the query no longer finds the seeded rows"
    assert result, "the query found nothing on the seeded data"
    if case.pick is not None:
        statements = [(sql, params) for sql, params in statements if case.pick in sql]
        assert statements, f"{name} sent no statement with {case.pick!r}"
    else:
        assert len(statements) == 1, statements
    plans: list[str] = []
    for sql, params in statements:
        plan = await plan_of(store, sql, params)
        assert not full_scans(plan), f"{name} scans a table in full: {plan}\n{sql}"
        assert case.literal in sql, f"the filter is bound, not written into the statement: {sql}"
        plans += plan
    indexes = case.pg_indexes if store.dialect == "postgresql" and case.pg_indexes is not None else case.indexes
    for wanted in indexes:
        used = any(index in line for line in plans for index in wanted.split("|"))
        assert used, f"{name} does not use {wanted}: {plans}\n{statements}"


async def test_the_check_sees_a_bound_filter(seeded: tuple[Store, Seeded]) -> None:
    """The same query with `state IN (?, ?)`: what the regression looked like, and that the check sees it."""
    from sqlalchemy import select

    from waflow.store.tables import inbound_events

    store, _seed = seeded
    bound = (
        select(inbound_events.c.id)
        .where(inbound_events.c.state.in_(("pending", "failed")), inbound_events.c.kind == "status")
        .order_by(inbound_events.c.id)
        .limit(100)
    )
    with captured(store) as statements:
        async with store.read() as conn:
            assert len((await conn.execute(bound)).all()) == 10
    [(sql, params)] = statements
    assert OPEN not in sql
    plan = await plan_of(store, sql, params)
    if store.dialect == "sqlite":
        assert full_scans(plan) == ["SCAN inbound_events"]
    assert not any("ix_inbound_events_open_by_kind" in line for line in plan)
