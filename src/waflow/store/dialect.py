"""Small dialect switches the repositories share (upsert statements, row locks, advisory locks)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

from sqlalchemy import BindParameter, FromClause, Select, Table, literal, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.sqlite.base import SQLiteCompiler
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.compiler import SQLCompiler

# pg_advisory_xact_lock(class, key) classes, so unrelated locks never collide.
LOCK_CLASS_WAMID = 0x77616D  # "wam": a provider message id (status apply vs record_accepted)
LOCK_CLASS_CONTACT = 0x636F6E  # "con": a contact identity (number + wa_id / user_id / contact_key)

S = TypeVar("S", bound=Select[Any])


def _sqlite_from_hint(self: SQLCompiler, table: FromClause, hint: str | None) -> str | None:
    return hint


# `select(...).with_hint(table, "INDEXED BY ix_name", "sqlite")` renders `FROM table INDEXED BY ix_name`
# (SQLAlchemy renders table hints only for the dialects that declare them; SQLite's compiler drops them).
# For statements where SQLite, which has no statistics here, would pick a wider index with the same
# leading columns than the partial one made for the query; `INDEXED BY` also fails loudly, rather than
# scanning, if a change makes the named index unusable.
SQLiteCompiler.get_from_hint_text = _sqlite_from_hint  # type: ignore[method-assign,assignment]


def index_hint(stmt: S, table: Table, index: str) -> S:
    """`stmt` told to read `table` through `index` on SQLite (PostgreSQL plans from its statistics)."""
    return stmt.with_hint(table, f"INDEXED BY {index}", "sqlite")


def const(value: Any) -> BindParameter[Any]:
    """`value` written into the statement's text instead of bound as a parameter.

    For the filters that select a partial index (`state IN ('pending', 'failed')`, `status =
    'queued'`, ...): SQLite uses a partial index only when the query's WHERE *provably* implies
    the index's, and a bound parameter proves nothing — with `state IN (?, ?)` every claim of the
    open inbox events was a full table scan (found as webhook commits stalling 20-50 ms every
    0.5 s, growing with the table). PostgreSQL's generic plans for prepared statements have the
    same blind spot.
    """
    return literal(value, literal_execute=True)


def one_of(values: Iterable[Any]) -> list[BindParameter[Any]]:
    """`column.in_(one_of(VALUES))`: an IN list of constants (see `const`)."""
    return [const(v) for v in values]


def is_postgres(conn: AsyncConnection) -> bool:
    return conn.dialect.name == "postgresql"


def insert(conn: AsyncConnection, table: Table) -> postgresql.Insert | sqlite.Insert:
    """The dialect's INSERT, which has `on_conflict_do_nothing` / `on_conflict_do_update`."""
    if is_postgres(conn):
        return postgresql.insert(table)
    return sqlite.insert(table)


def locking(conn: AsyncConnection, stmt: S) -> S:
    """`stmt ... FOR UPDATE` on PostgreSQL; SQLite's write transactions are already exclusive."""
    return stmt.with_for_update() if is_postgres(conn) else stmt


async def lock_keys(conn: AsyncConnection, lock_class: int, keys: Iterable[str]) -> None:
    """Transaction-scoped advisory locks on `keys` (PostgreSQL; SQLite writers are serialised).

    Taken in one statement, in hash order, so two transactions locking overlapping sets cannot deadlock.
    """
    if not is_postgres(conn):
        return
    distinct = sorted(set(keys))
    if not distinct:
        return
    await conn.execute(
        text(
            "SELECT pg_advisory_xact_lock(:cls, h) FROM "
            "(SELECT DISTINCT hashtext(k) AS h FROM unnest(CAST(:keys AS text[])) AS k ORDER BY h) AS s"
        ),
        {"cls": lock_class, "keys": distinct},
    )
