"""Database URLs and engines: one place that knows the dialect differences.

- `normalize_url` turns what a user types (a file path, `sqlite:///x.db`, `postgres://...`) into an
  async SQLAlchemy URL (`sqlite+aiosqlite`, `postgresql+asyncpg`).
- `create_engine` sets SQLite up for a durable single-writer store: WAL, `synchronous=FULL`,
  `busy_timeout`, foreign keys on, and write transactions opened with `BEGIN IMMEDIATE` so that
  read-modify-write transactions serialise instead of failing with "database is locked" on upgrade.
  Read-only work can ask for `BEGIN DEFERRED` with the `sqlite_begin="DEFERRED"` execution option.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiosqlite
import orjson
from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

log = logging.getLogger("waflow.store")
DEFAULT_URL = "sqlite+aiosqlite:///waflow.db"
URL_ENV = "WAFLOW_DATABASE_URL"
SQLITE_BUSY_TIMEOUT_MS = 30_000


def default_url() -> str:
    """The database URL from `WAFLOW_DATABASE_URL`, else `waflow.db` in the working directory."""
    return os.environ.get(URL_ENV) or DEFAULT_URL


def normalize_url(url: str | URL) -> URL:
    """An async SQLAlchemy URL for `url`; a bare path means a SQLite file."""
    if isinstance(url, str):
        if "://" not in url:
            return URL.create("sqlite+aiosqlite", database=str(Path(url).expanduser()))
        if url.startswith("postgres://"):
            url = "postgresql://" + url.removeprefix("postgres://")
        url = make_url(url)
    backend, _, driver = url.drivername.partition("+")
    if backend == "sqlite":
        if driver not in ("", "aiosqlite"):
            raise ValueError(f"SQLite needs the aiosqlite driver, not {driver!r}: use sqlite+aiosqlite:///path.db")
        if not url.database or url.database == ":memory:":
            raise ValueError("waflow needs a SQLite file (an in-memory database is not durable): give a path")
        return url.set(drivername="sqlite+aiosqlite")
    if backend in ("postgresql", "postgres"):
        if driver not in ("", "asyncpg"):
            raise ValueError(f"PostgreSQL needs the asyncpg driver, not {driver!r}: use postgresql+asyncpg://...")
        return url.set(drivername="postgresql+asyncpg")
    raise ValueError(
        f"unsupported database {url.drivername!r}: use sqlite+aiosqlite:///path.db or postgresql+asyncpg://"
    )


def _private_file(path: Path) -> None:
    """Create the SQLite file readable by its owner only (it holds conversations and phone numbers); SQLite
    gives its -wal and -shm files the database file's permissions. An existing file keeps its mode, with a
    warning when others may read it (the operator may have chosen so)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except FileExistsError:
        mode = path.stat().st_mode
        if mode & 0o077:
            log.warning("database file %s is readable or writable by others (mode %o): chmod 600 it", path,
                        mode & 0o777)


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def create_engine(url: str | URL, *, echo: bool = False, pool_size: int | None = None) -> AsyncEngine:
    """An `AsyncEngine` for `url`, set up for its dialect."""
    url = normalize_url(url)
    # hide_parameters: bound values (message texts, phone numbers, tokens in a row) never reach a log line or an
    # error's text; the statement itself still does
    kwargs: dict[str, Any] = {"echo": echo, "json_serializer": _json_dumps, "json_deserializer": orjson.loads,
                              "hide_parameters": True}
    if url.get_backend_name() == "sqlite":
        _private_file(Path(url.database or ""))
        kwargs["async_creator"] = _sqlite_connector(url.database or "")
        if pool_size is not None:
            kwargs["pool_size"] = pool_size
        engine = create_async_engine(url, **kwargs)
        _setup_sqlite(engine)
        return engine
    kwargs["pool_pre_ping"] = True
    if pool_size is not None:
        kwargs["pool_size"] = pool_size
    return create_async_engine(url, **kwargs)


class OneHopConnection(aiosqlite.Connection):
    """aiosqlite's connection, which can also run a whole unit of work on its own thread.

    aiosqlite hands each statement to the connection's thread and back: on a busy event loop
    each hand-off cost ~0.6 ms (measured in the webhook writer: BEGIN alone took 0.7 ms at
    p50), so a transaction of eight statements spent most of its time commuting.
    `waflow.store.bulk.in_one_hop` runs a coroutine of database work on the thread instead;
    its statements land here and run at once, where the connection lives.
    """

    async def _execute(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if threading.current_thread() is self._thread:
            return fn(*args, **kwargs)
        return await super()._execute(fn, *args, **kwargs)  # type: ignore[no-untyped-call]


def _sqlite_connector(path: str) -> Callable[[], Awaitable[OneHopConnection]]:
    def connect() -> sqlite3.Connection:
        return sqlite3.connect(path, timeout=SQLITE_BUSY_TIMEOUT_MS / 1000)

    async def create() -> OneHopConnection:
        connection = OneHopConnection(connect, iter_chunk_size=64)
        # as SQLAlchemy does for the connections it creates itself: a store left unclosed must not keep
        # the interpreter from exiting
        connection._thread.daemon = True
        await connection  # starts its thread and opens the file there
        return connection

    return create


def _setup_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the driver: we emit BEGIN ourselves (below).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA foreign_keys=ON")
        finally:
            cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "IMMEDIATE")
        if mode not in ("IMMEDIATE", "DEFERRED", "EXCLUSIVE"):
            raise ValueError(f"bad sqlite_begin {mode!r}")
        conn.exec_driver_sql(f"BEGIN {mode}")
