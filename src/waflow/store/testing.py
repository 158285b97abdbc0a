"""Helpers for tests that need a real database (any part's tests may use them).

- `sqlite_url(tmp_path)`: a SQLite file URL in a test's temp dir.
- `temporary_postgres_url()`: an async context manager that creates a fresh PostgreSQL database
  (`waflow_t_<random>`) from a connection to the admin database and drops it afterwards, so
  concurrent test sessions never share a database. The server is taken from
  `WAFLOW_TEST_PG_URL` (default `postgresql+asyncpg://postgres@127.0.0.1:5432/test`, then the
  same as user `root`).
- `services_required()`: True when `WAFLOW_REQUIRE_SERVICES=1` — an unreachable server must then
  fail the test instead of skipping it.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import create_async_engine

from waflow.store.engine import normalize_url

PG_URL_ENV = "WAFLOW_TEST_PG_URL"
DEFAULT_PG_URLS = (
    "postgresql+asyncpg://postgres@127.0.0.1:5432/test",
    "postgresql+asyncpg://root@127.0.0.1:5432/test",
)
REQUIRE_ENV = "WAFLOW_REQUIRE_SERVICES"


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server answered at the test URL(s)."""


def services_required() -> bool:
    return os.environ.get(REQUIRE_ENV, "") == "1"


def sqlite_url(tmp_path: Path | str, name: str = "waflow.db") -> str:
    return f"sqlite+aiosqlite:///{Path(tmp_path) / name}"


def admin_urls() -> list[URL]:
    """The admin connections `temporary_postgres_url` tries, in order."""
    configured = os.environ.get(PG_URL_ENV)
    return [normalize_url(u) for u in ([configured] if configured else DEFAULT_PG_URLS)]


async def _create_database(admin: URL, name: str) -> None:
    engine = create_async_engine(admin, isolation_level="AUTOCOMMIT", connect_args={"timeout": 5})
    try:
        async with engine.connect() as conn:
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        await engine.dispose()


async def _drop_database(admin: URL, name: str) -> None:
    engine = create_async_engine(admin, isolation_level="AUTOCOMMIT", connect_args={"timeout": 5})
    try:
        async with engine.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        await engine.dispose()


@asynccontextmanager
async def temporary_postgres_url(prefix: str = "waflow_t") -> AsyncIterator[str]:
    """Create a fresh database, yield its URL (password included), drop it on exit.

    Raises `PostgresUnavailable` when no server answers.
    """
    name = f"{prefix}_{secrets.token_hex(6)}"
    errors: list[str] = []
    for admin in admin_urls():
        try:
            await _create_database(admin, name)
        except (OSError, Exception) as exc:  # connection refused, auth, missing role...
            errors.append(f"{admin.render_as_string(hide_password=True)}: {type(exc).__name__}: {exc}")
            continue
        try:
            yield admin.set(database=name).render_as_string(hide_password=False)
        finally:
            await _drop_database(admin, name)
        return
    raise PostgresUnavailable("; ".join(errors))


async def postgres_available() -> bool:
    try:
        async with temporary_postgres_url():
            return True
    except PostgresUnavailable:
        return False


def redact(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)
