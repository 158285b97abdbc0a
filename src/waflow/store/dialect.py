"""Small dialect switches the repositories share (upsert statements, row locks, advisory locks)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

from sqlalchemy import BindParameter, Select, Table, literal, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

# pg_advisory_xact_lock(class, key) classes, so unrelated locks never collide.
LOCK_CLASS_WAMID = 0x77616D  # "wam": a provider message id (status apply vs record_accepted)

S = TypeVar("S", bound=Select[Any])


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
