"""`Store`: the engine, its transactions, the migrations, and the repositories in one handle."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from waflow.store.contacts import ContactRepository
from waflow.store.dead_letters import DeadLetterRepository
from waflow.store.engine import create_engine, default_url, normalize_url
from waflow.store.inbox import InboxRepository
from waflow.store.migrate import current_revision, head_revision, run_upgrade
from waflow.store.outbox import OutboxRepository
from waflow.store.sessions import SessionRepository
from waflow.store.statuses import StatusRepository
from waflow.store.timers import TimerRepository

_UPGRADE_LOCKS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = weakref.WeakKeyDictionary()


def _upgrade_lock() -> asyncio.Lock:
    loop = asyncio.get_running_loop()
    lock = _UPGRADE_LOCKS.get(loop)
    if lock is None:
        lock = _UPGRADE_LOCKS[loop] = asyncio.Lock()
    return lock


class Store:
    """One database: SQLite (a file) or PostgreSQL.

    `Store.open(url)` creates the engine (no I/O); `await store.upgrade()` brings the schema to
    the newest revision (an empty database included); `store.begin()` is a write transaction
    that commits on leaving the block and rolls back on an exception. Repositories take the
    transaction's `AsyncConnection`, so several of them compose into one atomic unit::

        store = Store.open("sqlite+aiosqlite:///waflow.db")
        await store.upgrade()
        async with store.begin() as conn:
            ids = await store.inbox.insert_events(conn, rows)
            await store.contacts.upsert_from_inbound(conn, phone_number_id, ref, at)
        await store.close()
    """

    inbox = InboxRepository()
    contacts = ContactRepository()
    dead_letters = DeadLetterRepository()
    outbox = OutboxRepository()
    statuses = StatusRepository()
    sessions = SessionRepository()
    timers = TimerRepository()

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    @classmethod
    def open(cls, url: str | URL | None = None, *, echo: bool = False, pool_size: int | None = None) -> Store:
        """A store on `url` (default: `WAFLOW_DATABASE_URL`, else `./waflow.db`)."""
        return cls(create_engine(url if url is not None else default_url(), echo=echo, pool_size=pool_size))

    @property
    def url(self) -> URL:
        return self.engine.url

    @property
    def dialect(self) -> str:
        """`"sqlite"` or `"postgresql"`."""
        return self.engine.dialect.name

    async def upgrade(self, revision: str = "head") -> None:
        """Migrate the schema to `revision` in one transaction; does nothing when already there.

        Safe to call from several processes at once (PostgreSQL: advisory lock; SQLite: the write
        lock); within one process, calls run one at a time (Alembic's context is process-global).
        """
        async with _upgrade_lock(), self.engine.connect() as conn:
            await conn.run_sync(run_upgrade, revision)
            await conn.commit()

    async def revision(self) -> str | None:
        """The schema revision the database is at (None for an empty database)."""
        async with self.read() as conn:
            return await conn.run_sync(current_revision)

    async def is_current(self) -> bool:
        return await self.revision() == head_revision()

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction (SQLite: `BEGIN IMMEDIATE`; writers queue on `busy_timeout`)."""
        async with self.engine.begin() as conn:
            yield conn

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A read transaction (SQLite: `BEGIN DEFERRED`, so it does not block writers)."""
        async with self.engine.connect() as conn:
            conn = await conn.execution_options(sqlite_begin="DEFERRED")
            async with conn.begin():
                yield conn

    async def close(self) -> None:
        await self.engine.dispose()

    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"Store({self.url.render_as_string(hide_password=True)!r})"


def describe_url(url: str | URL) -> str:
    """`url` normalised, with the password hidden (for logs and CLI output)."""
    return normalize_url(url).render_as_string(hide_password=True)
