"""Query plans at a realistic size: the harness of issue 12's plan tests (import it; it has no tests).

Every statement on a per-message, per-claim, per-tick or per-request path must be an index lookup or
a bounded range at a real business's size. A case here runs the real repository code on a store
seeded at `PLAN_SIZES` (`waflow.store.seeding`), captures every statement it sends, explains each —
SQLite `EXPLAIN QUERY PLAN`; PostgreSQL `EXPLAIN` with the actual parameters (a custom plan) *and*
as a prepared statement gone generic (asyncpg prepares every statement and PostgreSQL switches to
a generic plan after five executions), on `VACUUM ANALYZE`d tables, with every planner method
enabled — and fails on a line that reads a big table whole or sorts it.

Writing a case (in `test_plans_at_scale.py`'s `CASES`, or in your own `tests/store/test_plans_<area>.py`)::

    from . import plans
    from .plans import Big, assert_plans_bounded

    # the fixtures, bound rather than imported (a test argument named like an imported name is F811 to ruff);
    # `big_store` needs the other two visible in the module as well
    big_sqlite, big_postgres, big_store = plans.big_sqlite, plans.big_postgres, plans.big_store

    @pytest.mark.asyncio(loop_scope="session")   # the seeded stores live on the session's loop
    async def test_my_statement(big_store: Big) -> None:
        store, info = big_store
        await assert_plans_bounded(
            store, "contacts.get", lambda c: store.contacts.get(c, info.phone_number_id, info.contact_key)
        )

`run(conn)` gets a connection in a transaction that is rolled back afterwards, so cases do not
disturb each other (or the seeded data) and may write freely.

API:

- fixtures `big_sqlite`, `big_postgres`, `big_store` (both): `Big` = (store, `SeedInfo`), seeded once
  per test session. PostgreSQL runs in its own fresh database (dropped at the end); it skips when
  the server is unreachable, fails when `WAFLOW_REQUIRE_SERVICES=1`.
- `captured(store, conn=None)`: the `Statement`s sent inside the block (SQLAlchemy's and, given
  `conn` on SQLite, those run directly on sqlite3 through `waflow.store.bulk.sqlite_call`).
- `plan_of(store, sql, params, generic=False)`: the plan as lines (SQLite: indented by tree depth).
- `bad_plan_lines(plan, big_tables, sql="", small=())`: the lines breaking the rules below.
- `findings(store, run, ...)`: what `assert_plans_bounded` checks, returned instead of asserted.
- `assert_plans_bounded(store, name, run, big_tables=BIG_TABLES, allow=())`: run, capture, explain,
  fail with each offending statement, its plan and the bad lines; returns the statements.
  `allow` lists substrings of bad lines a case accepts — say why next to it.

The rules (what "reads a big table whole or sorts it" means):

An access to a big table is *unbounded* when it is
- SQLite: `SCAN t` (the table, in rowid order), `SCAN t USING [COVERING] INDEX i` (a whole index),
  or a `SEARCH` whose every constraint is an equality on a low-cardinality column (`LOW_CARDINALITY`:
  `phone_number_id = ?` is the whole table for a business with one number; `status = ?` half of it);
- PostgreSQL: `Seq Scan on t`; an `Index [Only] Scan` without `Index Cond` or whose conditions are all
  low-cardinality equalities; any scan estimated to return more than `RANGE_ROWS` rows.
A walk of a whole *partial* index that holds at most `RANGE_ROWS` rows at the seeded size (counted:
`small_indexes`) is bounded — by the open work it holds (pending events, queued messages), not by
the table. A range (`id > ?`, `due_at <= ?`) counts as bounded: the statements that use one bound it by what is
new or due, which the planner cannot know either.

Bad lines:
1. an unbounded access — except an *index walk in order under a LIMIT* (top-N by index): SQLite
   `SCAN t USING [COVERING] INDEX` / low-cardinality `SEARCH`, when the statement has a LIMIT, the
   walk is the outer loop of its (sub)query and no temp B-tree re-sorts it; PostgreSQL an
   `Index [Only] Scan` under a `Limit` with no `Sort` in between *and no `Filter:`* (the index
   carries every condition on the table: a filter may reject any number of rows before the LIMIT
   is reached — the generic plan of the `state IN ($1, $2)` regression is exactly such a walk of
   the primary key). A bare SQLite `SCAN t` or a PostgreSQL `Seq Scan` is never excused: with a
   selective filter it reads the table to find its few rows (the same regression on SQLite was
   `SCAN inbound_events` under a LIMIT). The leniency left: SQLite's plan does not show filters,
   so there an ordered index walk under LIMIT whose filter rejects most rows still passes.
2. a sort of a big table: SQLite `USE TEMP B-TREE FOR ORDER BY / GROUP BY / DISTINCT` in a
   (sub)query that accesses a big table unboundedly; PostgreSQL a `Sort` estimated at more than
   `SORT_ROWS` rows.

SQLite is planned without statistics (`sqlite_stat1`), as in production: the store never runs
`ANALYZE` or `PRAGMA optimize`.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncConnection

from waflow.store import Store
from waflow.store.seeding import SeedInfo, Sizes, seed_store
from waflow.store.tables import metadata
from waflow.store.testing import PostgresUnavailable, services_required, sqlite_url, temporary_postgres_url

# A tenth of the audit's business: 100k contacts, 200k inbound events, 100k outbound messages, 300k status
# events, 20k sessions, 10k timers. Big enough that a full scan or a sort shows in the plan and PostgreSQL's
# costs choose as they would at 1M; small enough to seed in seconds.
PLAN_SIZES = Sizes.audit().scaled(0.1)

BIG_TABLES = frozenset(
    {"contacts", "inbound_events", "outbound_messages", "status_events", "send_attempts", "sessions", "timers"}
)
# equality on these selects a large share of a table, so alone it bounds nothing
LOW_CARDINALITY = frozenset(
    {
        "phone_number_id", "state", "status", "kind", "provider", "opted_out", "active", "business_initiated",
        "waiting_reason", "error_class", "outcome", "applied", "advanced", "flow_id", "flow_version", "type",
    }
)  # fmt: skip
SORT_ROWS = 1_000  # PostgreSQL: a Sort estimated above this sorts a big share of a table
RANGE_ROWS = 5_000  # PostgreSQL: a scan estimated above this reads a big share of a table

Big = tuple[Store, SeedInfo]
Run = Callable[[AsyncConnection], Awaitable[Any]]


@dataclass(frozen=True)
class Statement:
    sql: str
    params: Any  # as sent to the driver (for an executemany, the first row's)
    executemany: bool = False

    @property
    def explainable(self) -> bool:
        return self.sql.lstrip().upper().startswith(("SELECT", "UPDATE", "DELETE", "INSERT", "WITH"))


# ---- fixtures ----


async def _seeded(url: str) -> Store:
    store = Store.open(url)
    await store.upgrade()
    return store


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def big_sqlite(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Big]:
    """A SQLite file store seeded at `PLAN_SIZES`."""
    path: Path = tmp_path_factory.mktemp("plans")
    store = await _seeded(sqlite_url(path))
    try:
        info = await seed_store(store, PLAN_SIZES)
        yield store, info
    finally:
        await store.close()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def big_postgres() -> AsyncIterator[Big]:
    """A PostgreSQL store in its own fresh database, seeded at `PLAN_SIZES` and `VACUUM ANALYZE`d."""
    try:
        async with temporary_postgres_url(prefix="waflow_plans") as url:
            store = await _seeded(url)
            try:
                info = await seed_store(store, PLAN_SIZES)
                yield store, info
            finally:
                await store.close()
    except PostgresUnavailable as exc:
        if services_required():
            pytest.fail(f"PostgreSQL required (WAFLOW_REQUIRE_SERVICES=1) but unreachable: {exc}")
        pytest.skip(f"PostgreSQL unreachable: {exc}")


@pytest.fixture(scope="session", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def big_store(request: pytest.FixtureRequest) -> Big:
    # synchronous on purpose: it only picks one of the async fixtures, which pytest-asyncio sets up on the
    # session loop (an async fixture asking for another one here would re-enter the running loop)
    """`big_sqlite`, then `big_postgres` (each seeded once per session, on first use)."""
    fixture = "big_sqlite" if request.param == "sqlite" else "big_postgres"
    big: Big = request.getfixturevalue(fixture)
    return big


# ---- capture ----


class _Recording:
    """A sqlite3 connection that records what is executed on it directly (`sqlite_call`'s statements)."""

    def __init__(self, real: sqlite3.Connection, out: list[Statement]) -> None:
        object.__setattr__(self, "_real", real)
        object.__setattr__(self, "_out", out)

    def execute(self, sql: str, params: Any = ()) -> sqlite3.Cursor:
        self._out.append(Statement(sql, params))
        return self._real.execute(sql, params)

    def executemany(self, sql: str, rows: Any) -> sqlite3.Cursor:
        rows = list(rows)
        if rows:
            self._out.append(Statement(sql, rows[0], executemany=True))
        return self._real.executemany(sql, rows)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._real, name, value)


@contextlib.asynccontextmanager
async def captured(store: Store, conn: AsyncConnection | None = None) -> AsyncIterator[list[Statement]]:
    """The statements `store` sends inside the block, in order.

    SQLAlchemy's (`before_cursor_execute`: plain and executemany) on both databases; with `conn` on
    SQLite also those run on its sqlite3 connection directly (`waflow.store.bulk.sqlite_call`).
    """
    statements: list[Statement] = []

    def record(_conn: Any, _cursor: Any, sql: str, params: Any, _context: Any, executemany: bool) -> None:
        if executemany:
            rows = list(params or [])
            if rows:
                statements.append(Statement(sql, rows[0], executemany=True))
        else:
            statements.append(Statement(sql, params))

    driver: Any = None
    if conn is not None and store.dialect == "sqlite":
        driver = (await conn.get_raw_connection()).driver_connection
        driver._connection = _Recording(driver._connection, statements)  # what aiosqlite's `_conn` returns
    event.listen(store.engine.sync_engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(store.engine.sync_engine, "before_cursor_execute", record)
        if driver is not None:
            driver._connection = object.__getattribute__(driver._connection, "_real")


# ---- plans ----


def sqlite_plan(store: Store, sql: str, params: Any) -> list[str]:
    """`EXPLAIN QUERY PLAN`, one line per node, indented two spaces per level of the tree."""
    db = sqlite3.connect(store.url.database or "")
    try:
        rows = db.execute("EXPLAIN QUERY PLAN " + sql, params or ()).fetchall()
    finally:
        db.close()
    depth: dict[int, int] = {0: -1}
    lines = []
    for node, parent, _unused, detail in rows:
        depth[node] = depth.get(parent, -1) + 1
        lines.append("  " * depth[node] + detail)
    return lines


def pg_literal(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, datetime):
        return "'" + value.isoformat() + "'"
    if isinstance(value, bytes):
        return "'\\x" + value.hex() + "'"
    if isinstance(value, list | tuple):
        items = ",".join(
            "NULL" if v is None else '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"' for v in value
        )
        return "'{" + items.replace("'", "''") + "}'"
    return "'" + str(value).replace("'", "''") + "'"


async def postgres_plan(store: Store, sql: str, params: Any, *, generic: bool = False) -> list[str]:
    """PostgreSQL's plan for `sql` with `params`: as the driver sends it (parameters known: a custom plan),
    or, `generic`, as a prepared statement planned without them."""
    async with store.engine.connect() as conn:
        try:
            if not generic:
                rows = await conn.exec_driver_sql("EXPLAIN " + sql, tuple(params or ()))
                return [row[0] for row in rows]
            await conn.exec_driver_sql("SET LOCAL plan_cache_mode = force_generic_plan")
            await conn.exec_driver_sql(f"PREPARE waflow_plan AS {sql}")
            try:
                args = ", ".join(pg_literal(v) for v in params or ())
                rows = await conn.exec_driver_sql(f"EXPLAIN EXECUTE waflow_plan({args})" if args else
                                                  "EXPLAIN EXECUTE waflow_plan")  # fmt: skip
                return [row[0] for row in rows]
            finally:
                await conn.exec_driver_sql("DEALLOCATE waflow_plan")  # a session's, not the transaction's
        finally:
            await conn.rollback()


async def plan_of(store: Store, sql: str, params: Any, *, generic: bool = False) -> list[str]:
    """The plan of `sql` (SQLite: `generic` makes no difference — it has no plan cache to go generic)."""
    if store.dialect == "sqlite":
        return sqlite_plan(store, sql, params)
    return await postgres_plan(store, sql, params, generic=generic)


async def small_indexes(store: Store) -> frozenset[str]:
    """The partial indexes holding at most `RANGE_ROWS` rows in `store` (counted, once per store): walking
    one whole is bounded by the open work it holds (pending events, queued messages), not by the table."""
    cached = _SMALL.get(id(store))
    if cached is not None:
        return cached
    small = set()
    async with store.read() as conn:
        for table in metadata.sorted_tables:
            for index in table.indexes:
                where = index.dialect_options["sqlite"].get("where")
                if where is None or index.name is None:
                    continue
                count = (await conn.execute(text(f"SELECT count(*) FROM {table.name} WHERE {where}"))).scalar_one()
                if count <= RANGE_ROWS:
                    small.add(index.name)
    _SMALL[id(store)] = frozenset(small)
    return _SMALL[id(store)]


_SMALL: dict[int, frozenset[str]] = {}


# ---- rules ----

_SQLITE_ACCESS = re.compile(r"^(SCAN|SEARCH) (\S+)(?: AS (\S+))?(.*)$")
_TEMP_SORT = re.compile(r"USE TEMP B-TREE FOR (ORDER BY|GROUP BY|DISTINCT|RIGHT PART OF ORDER BY|LAST TERM)")
_PG_NODE = re.compile(r"^(\s*)(?:->\s+)?([A-Z][A-Za-z ]+?)(?: using \S+)?(?: on (\S+)(?: \S+)?)?\s+\(cost=.*rows=(\d+)")
_LIMIT = re.compile(r"\bLIMIT\b", re.IGNORECASE)


def _aliases(sql: str, big_tables: Collection[str]) -> set[str]:
    """Names the plan may use for the big tables in `sql`: the tables and their aliases."""
    names = set(big_tables)
    for table in big_tables:
        for match in re.finditer(rf"\b{table}\s+(?:AS\s+)?(\w+)", sql, re.IGNORECASE):
            if match.group(1).upper() not in _KEYWORDS:
                names.add(match.group(1))
    return names


_KEYWORDS = frozenset(
    {
        "WHERE", "SET", "ON", "JOIN", "LEFT", "INNER", "ORDER", "GROUP", "LIMIT", "VALUES", "SELECT", "FROM", "AND",
        "OR", "USING", "RETURNING", "FOR", "UNION", "AS", "NATURAL", "CROSS", "DEFAULT", "WITH", "OFFSET", "INDEXED",
        "NOT", "HAVING", "WINDOW", "OUTER", "FULL", "RIGHT", "EXCEPT", "INTERSECT", "IS", "IN",
    }
)  # fmt: skip


def _low_cardinality_only(conditions: str) -> bool:
    """Whether every term of a constraint list is an equality on a low-cardinality column."""
    terms = [t.strip("() ") for t in re.split(r"\bAND\b", conditions)]
    columns = []
    for term in terms:
        match = re.match(r"^(?:\w+\.)?(\w+)\s*(=|IN\b|==)", term)
        if match is None:
            return False  # a range or something else: bounded (see the module docstring)
        columns.append(match.group(1))
    return bool(columns) and all(c in LOW_CARDINALITY for c in columns)


def _sqlite_bad(plan: list[str], names: set[str], has_limit: bool, small: Collection[str]) -> list[str]:
    nodes = [(len(line) - len(line.lstrip()), line.strip()) for line in plan]
    bad: list[str] = []
    unbounded_at: list[int] = []
    for i, (_depth, detail) in enumerate(nodes):
        match = _SQLITE_ACCESS.match(detail)
        if match is None:
            continue
        kind, table, alias, rest = match.groups()
        if table not in names and (alias or "") not in names:
            continue
        index = re.search(r"USING (?:COVERING )?INDEX (\S+)", rest)
        if index is not None and index.group(1) in small:
            continue
        if kind == "SCAN":
            unbounded = True
        else:
            cond = re.search(r"\((.*)\)\s*$", rest)
            unbounded = cond is not None and _low_cardinality_only(cond.group(1))
        if not unbounded:
            continue
        walks_index = kind == "SEARCH" or " INDEX " in rest
        siblings = _siblings(nodes, i)
        first_loop = all(not _SQLITE_ACCESS.match(nodes[j][1]) for j in siblings if j < i)
        resorted = any(_TEMP_SORT.search(nodes[j][1]) for j in siblings)
        if walks_index and has_limit and first_loop and not resorted:
            continue  # top-N by index order: a sort above it (of its at most LIMIT rows) is no sort of a big table
        unbounded_at.append(i)
        bad.append(detail)
    for i, (_depth, detail) in enumerate(nodes):
        if _TEMP_SORT.search(detail) and any(j in unbounded_at for j in _scope(nodes, i)):
            bad.append(detail)
    return bad


def _parent(nodes: list[tuple[int, str]], i: int) -> int:
    depth = nodes[i][0]
    for j in range(i - 1, -1, -1):
        if nodes[j][0] < depth:
            return j
    return -1


def _siblings(nodes: list[tuple[int, str]], i: int) -> list[int]:
    parent = _parent(nodes, i)
    return [j for j in range(len(nodes)) if nodes[j][0] == nodes[i][0] and _parent(nodes, j) == parent]


def _scope(nodes: list[tuple[int, str]], i: int) -> list[int]:
    """The nodes of `i`'s (sub)query: its siblings and everything below them."""
    parent = _parent(nodes, i)
    depth = nodes[i][0]
    out = []
    for j in range(parent + 1, len(nodes)):
        if nodes[j][0] < depth:
            break
        out.append(j)
    return out


def _pg_bad(plan: list[str], names: set[str], small: Collection[str]) -> list[str]:
    parsed: list[tuple[int, str, str | None, int, int]] = []  # (indent, node, table, rows, line index)
    for index, line in enumerate(plan):
        match = _PG_NODE.match(line)
        if match:
            indent = len(match.group(1))
            parsed.append((indent, match.group(2).strip(), match.group(3), int(match.group(4)), index))
    bad: list[str] = []
    for k, (_indent, node, table, rows, index) in enumerate(parsed):
        if node == "Sort" and rows > SORT_ROWS:
            bad.append(plan[index].strip() + f"  [sorts ~{rows} rows]")
            continue
        if table is None or table not in names or "Scan" not in node:
            continue
        if node == "Seq Scan":
            bad.append(plan[index].strip())
            continue
        if node.startswith("Bitmap Index"):
            continue  # its Bitmap Heap Scan is judged
        used = re.search(r" using (\S+) on ", plan[index])
        if used is not None and used.group(1) in small and rows <= RANGE_ROWS:
            continue
        details = _details(plan, index, parsed[k + 1][4] if k + 1 < len(parsed) else len(plan))
        cond = next((d.split(":", 1)[1] for d in details if d.startswith(("Index Cond:", "Recheck Cond:"))), None)
        unbounded = rows > RANGE_ROWS or (node.startswith("Index") and (cond is None or _low_cardinality_only(cond)))
        if not unbounded:
            continue
        filtered = any(d.startswith("Filter:") for d in details)
        if node.startswith("Index") and not filtered and _under_limit(parsed, k):
            continue  # top-N by index order
        bad.append(plan[index].strip() + (f"  [~{rows} rows]" if rows > RANGE_ROWS else "  [whole index]"))
    return bad


def _details(plan: list[str], start: int, end: int) -> list[str]:
    return [plan[j].strip() for j in range(start + 1, end)]


def _under_limit(parsed: list[tuple[int, str, str | None, int, int]], k: int) -> bool:
    """Whether node k's nearest ancestor that is not a pass-through node is a Limit (no Sort in between)."""
    indent = parsed[k][0]
    for j in range(k - 1, -1, -1):
        if parsed[j][0] < indent:
            node = parsed[j][1]
            if node == "Limit":
                return True
            if node in ("LockRows", "Subquery Scan", "Result", "Nested Loop", "Unique"):
                indent = parsed[j][0]
                continue
            return False
    return False


def bad_plan_lines(
    plan: list[str], big_tables: Collection[str] = BIG_TABLES, *, sql: str = "", small: Collection[str] = ()
) -> list[str]:
    """The lines of `plan` that read a big table whole or sort one (the rules: the module docstring).

    `sql`, when given, lets the check know the statement's LIMIT (SQLite's plan does not show it) and
    its aliases for the big tables; `small` names partial indexes whose whole walk is bounded
    (`small_indexes`). The dialect is told by the plan's shape.
    """
    names = _aliases(sql, big_tables) if sql else set(big_tables)
    if any("(cost=" in line for line in plan):
        return _pg_bad(plan, names, small)
    return _sqlite_bad(plan, names, bool(_LIMIT.search(sql)), small)


# ---- the check ----


@dataclass(frozen=True)
class Finding:
    statement: Statement
    plan: list[str]
    bad: list[str]
    generic: bool

    def __str__(self) -> str:
        kind = " (generic plan)" if self.generic else ""
        return (
            f"--- {self.statement.sql}\n    params: {self.statement.params!r}\n    plan{kind}:\n      "
            + "\n      ".join(self.plan)
            + "\n    bad:\n      "
            + "\n      ".join(self.bad)
        )


@contextlib.asynccontextmanager
async def rolled_back(store: Store) -> AsyncIterator[AsyncConnection]:
    """A connection in a transaction that is rolled back at the end (SQLite: `BEGIN IMMEDIATE`, as writers do)."""
    async with store.engine.connect() as conn:
        await conn.begin()
        try:
            yield conn
        finally:
            await conn.rollback()


async def findings(
    store: Store, run: Run, *, big_tables: Collection[str] = BIG_TABLES, allow: Collection[str] = ()
) -> tuple[list[Statement], list[Finding]]:
    """Run `run(conn)` in a rolled-back transaction; every statement it sent, and those with bad plans."""
    async with rolled_back(store) as conn, captured(store, conn) as statements:
        await run(conn)
    out: list[Finding] = []
    small = await small_indexes(store)
    for statement in statements:
        if not statement.explainable:
            continue
        for generic in (False, True) if store.dialect == "postgresql" else (False,):
            try:
                plan = await plan_of(store, statement.sql, statement.params, generic=generic)
            except Exception as exc:  # the statement itself ran: a failure here is the harness's
                raise AssertionError(f"cannot explain {statement.sql!r} {statement.params!r}: {exc}") from exc
            bad = [line for line in bad_plan_lines(plan, big_tables, sql=statement.sql, small=small)
                   if not any(a in line for a in allow)]  # fmt: skip
            if bad:
                out.append(Finding(statement, plan, bad, generic))
    return statements, out


async def assert_plans_bounded(
    store: Store, name: str, run: Run, *, big_tables: Collection[str] = BIG_TABLES, allow: Collection[str] = ()
) -> list[Statement]:
    """Fail unless every statement `run(conn)` sends is an index lookup or a bounded range; its statements."""
    statements, found = await findings(store, run, big_tables=big_tables, allow=allow)
    assert statements, f"{name}: sent no statement"
    if found:
        report = "\n".join(str(f) for f in found)
        pytest.fail(f"{name} on {store.dialect}: {len(found)} plan(s) read a big table whole or sort it\n{report}",
                    pytrace=False)  # fmt: skip
    return statements


__all__ = [
    "BIG_TABLES",
    "LOW_CARDINALITY",
    "PLAN_SIZES",
    "RANGE_ROWS",
    "SORT_ROWS",
    "Big",
    "Finding",
    "Statement",
    "assert_plans_bounded",
    "bad_plan_lines",
    "big_postgres",
    "big_sqlite",
    "big_store",
    "captured",
    "findings",
    "plan_of",
    "rolled_back",
    "small_indexes",
]
