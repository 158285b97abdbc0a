"""Database URLs and engines: one place that knows the dialect differences.

- `normalize_url` turns what a user types (a file path, `sqlite:///x.db`, `postgres://...`) into an
  async SQLAlchemy URL (`sqlite+aiosqlite`, `postgresql+asyncpg`).
- `create_engine` sets SQLite up for a durable single-writer store: WAL, `synchronous=FULL`,
  `busy_timeout`, foreign keys on, and write transactions opened with `BEGIN IMMEDIATE` so that
  read-modify-write transactions serialise instead of failing with "database is locked" on upgrade.
  Read-only work can ask for `BEGIN DEFERRED` with the `sqlite_begin="DEFERRED"` execution option.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

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


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def create_engine(url: str | URL, *, echo: bool = False, pool_size: int | None = None) -> AsyncEngine:
    """An `AsyncEngine` for `url`, set up for its dialect."""
    url = normalize_url(url)
    kwargs: dict[str, Any] = {"echo": echo, "json_serializer": _json_dumps, "json_deserializer": orjson.loads}
    if url.get_backend_name() == "sqlite":
        Path(url.database or "").parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
        if pool_size is not None:
            kwargs["pool_size"] = pool_size
        engine = create_async_engine(url, **kwargs)
        _setup_sqlite(engine)
        return engine
    kwargs["pool_pre_ping"] = True
    if pool_size is not None:
        kwargs["pool_size"] = pool_size
    return create_async_engine(url, **kwargs)


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
