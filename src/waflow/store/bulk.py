"""Bulk writes for the store's hot paths (inbox group commit, status application).

SQLAlchemy's generic executemany costs ~20 µs a row in bind processing, and on SQLite an
`INSERT ... RETURNING` whose ids must come back in parameter order is sent ONE ROW AT A TIME
(SQLite does not promise RETURNING order), each a thread hand-off to aiosqlite: that was
~140 µs per applied status. Here rows arrive as plain tuples with JSON already serialised, and

- on SQLite the whole statement (plus the id lookup) runs in ONE hop on aiosqlite's thread
  (`sqlite_call`), as a plain `sqlite3` `executemany` inside the caller's transaction;
- on PostgreSQL it is one `INSERT ... SELECT FROM unnest(<one array per column>)` round trip.

Ids: the caller's write transaction holds SQLite's write lock and ids are `INTEGER PRIMARY KEY`
(rowid) without AUTOINCREMENT, so every row inserted by the statement gets an id above the
table's `max(id)` read just before, in insertion order. On PostgreSQL the sequence hands out ids
in the order the SELECT produces rows (`ORDER BY` the array ordinal), so the sorted ids are
the rows' ids in parameter order.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Coroutine, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import Boolean, Table, text
from sqlalchemy import exc as exc_mod
from sqlalchemy.ext.asyncio import AsyncConnection

from waflow.store.engine import OneHopConnection
from waflow.store.types import UTCDateTime

T = TypeVar("T")

# how SQLAlchemy's SQLite DATETIME stores a value (fixed width, so text order is time order)
_SQLITE_TS = "%04d-%02d-%02d %02d:%02d:%02d.%06d"


def sqlite_ts(value: datetime | None) -> str | None:
    """`value` as `UTCDateTime` stores it on SQLite (naive UTC text)."""
    if value is None:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return _SQLITE_TS % (value.year, value.month, value.day, value.hour, value.minute, value.second, value.microsecond)


async def sqlite_call(conn: AsyncConnection, fn: Callable[[sqlite3.Connection], T]) -> T:
    """`fn(sqlite3_connection)` on aiosqlite's thread, in ONE hand-off, inside `conn`'s transaction.

    aiosqlite exposes no public "run this on your thread"; `_execute` is what its own methods
    use. Each of its public calls is one hop per statement, each waiting for a turn of the busy
    event loop while the write lock is held, which is what this avoids.
    """
    raw = await conn.get_raw_connection()
    driver: Any = raw.driver_connection
    try:
        result: T = await driver._execute(fn, driver._conn)
    except sqlite3.Error as exc:
        # the same exception classes SQLAlchemy raises for its own statements (IntegrityError, ...)
        raise exc_mod.DBAPIError.instance(None, None, exc, sqlite3.Error) from exc
    return result


class SuspendedError(RuntimeError):
    """Work given to `in_one_hop` waited on something other than the database."""


async def in_one_hop(conn: AsyncConnection, work: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """`await work()` — database work on `conn` only — in ONE hand-off to SQLite's thread.

    The coroutine is driven on the thread of `conn`'s aiosqlite connection (`OneHopConnection`),
    where each statement it awaits runs at once, so it completes without ever suspending: the
    whole unit costs one thread hand-off instead of one per statement. `work` must await nothing
    but the store (no network, no sleeps, no locks): on that thread there is no event loop, so
    such an await fails — `SuspendedError` for a bare yield, the awaitable's own error otherwise —
    and the caller's transaction rolls back. On PostgreSQL (or another driver) it is just awaited.
    """
    raw = await conn.get_raw_connection()
    driver = raw.driver_connection
    if not isinstance(driver, OneHopConnection):
        return await work()

    def drive() -> T:
        coro = work()
        try:
            coro.send(None)
        except StopIteration as done:
            result: T = done.value
            return result
        coro.close()
        raise SuspendedError("in_one_hop: the work awaited something other than the database")

    result: T = await driver._execute(drive)
    return result


class BulkInsert:
    """A prepared bulk INSERT of `columns` into `table` (rows are tuples in that column order).

    Values per column type: `UTCDateTime` a datetime (aware, or naive UTC), JSON columns a str
    of JSON text (serialised once by the caller), booleans bool, others as-is.
    `conflict` names the unique column(s) of `ON CONFLICT (...) DO NOTHING`.
    """

    def __init__(
        self, table: Table, columns: Sequence[str], *, conflict: Sequence[str] = (), returning: Sequence[str] = ("id",)
    ) -> None:
        if not returning or returning[0] != "id":
            raise ValueError("returning must start with id")
        self.returning = ", ".join(returning)
        self.table = table
        self.columns = tuple(columns)
        self.conflict = tuple(conflict)
        cols = [table.c[name] for name in self.columns]
        self._ts = tuple(i for i, c in enumerate(cols) if isinstance(c.type, UTCDateTime))
        self._bool = tuple(i for i, c in enumerate(cols) if isinstance(c.type, Boolean))
        on_conflict = f" ON CONFLICT ({', '.join(self.conflict)}) DO NOTHING" if self.conflict else ""
        names = ", ".join(self.columns)
        self._sqlite_sql = (
            f"INSERT INTO {table.name} ({names}) VALUES ({', '.join('?' * len(self.columns))}){on_conflict}"
        )
        self._pg_sql: str | None = None
        self._pg_cols = cols

    def _pg(self, conn: AsyncConnection) -> str:
        if self._pg_sql is None:
            arrays, selects = [], []
            for i, col in enumerate(self._pg_cols):
                sql_type = col.type.compile(dialect=conn.dialect)
                is_json = sql_type in ("JSON", "JSONB")
                arrays.append(f"CAST(:c{i} AS {'TEXT' if is_json else sql_type}[])")
                selects.append(f"CAST(u.c{i} AS {sql_type})" if is_json else f"u.c{i}")
            aliases = ", ".join(f"c{i}" for i in range(len(self._pg_cols)))
            on_conflict = f" ON CONFLICT ({', '.join(self.conflict)}) DO NOTHING" if self.conflict else ""
            self._pg_sql = (
                f"INSERT INTO {self.table.name} ({', '.join(self.columns)}) "
                f"SELECT {', '.join(selects)} FROM unnest({', '.join(arrays)}) WITH ORDINALITY AS u({aliases}, ord) "
                f"ORDER BY u.ord{on_conflict} RETURNING {self.returning}"
            )
        return self._pg_sql

    def _sqlite_rows(self, rows: Sequence[Sequence[Any]]) -> list[Sequence[Any]]:
        if not self._ts and not self._bool:
            return list(rows)
        out: list[Sequence[Any]] = []
        ts, bools = self._ts, self._bool
        last: Any = None
        last_text: str | None = None
        for row in rows:
            values = list(row)
            for i in ts:
                value = values[i]
                if value is not last:  # a batch shares its received_at / recorded_at: format it once
                    last, last_text = value, sqlite_ts(value)
                values[i] = last_text
            for i in bools:
                if values[i] is not None:
                    values[i] = 1 if values[i] else 0
            out.append(values)
        return out

    async def run(self, conn: AsyncConnection, rows: Sequence[Sequence[Any]]) -> list[tuple[Any, ...]]:
        """Insert `rows`; the `returning` columns of the rows inserted, in insertion (= id) order.

        Without `conflict` the result has one tuple per row, in parameter order; with it, rows
        skipped as duplicates have none.
        """
        if not rows:
            return []
        if conn.dialect.name == "sqlite":
            params = self._sqlite_rows(rows)
            sql, table, returning = self._sqlite_sql, self.table.name, self.returning

            def insert(db: sqlite3.Connection) -> list[tuple[Any, ...]]:
                before = db.execute(f"SELECT coalesce(max(id), 0) FROM {table}").fetchone()[0]
                db.executemany(sql, params)
                return db.execute(f"SELECT {returning} FROM {table} WHERE id > ? ORDER BY id", (before,)).fetchall()

            return await sqlite_call(conn, insert)
        binds: dict[str, Any] = {}
        for i in range(len(self.columns)):
            column = [row[i] for row in rows]
            if i in self._ts:
                column = [v if v is None or v.tzinfo is not None else v.replace(tzinfo=UTC) for v in column]
            binds[f"c{i}"] = column
        result = await conn.execute(text(self._pg(conn)), binds)
        return sorted((tuple(r) for r in result), key=lambda r: int(r[0]))


__all__ = ["BulkInsert", "sqlite_call", "sqlite_ts"]
