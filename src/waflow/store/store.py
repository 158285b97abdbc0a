"""`Store`: the engine, its transactions, the migrations, and the repositories in one handle."""

from __future__ import annotations

import asyncio
import collections
import fcntl
import os
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from waflow.store.consent import ConsentRepository
from waflow.store.contacts import ContactRepository
from waflow.store.dead_letters import DeadLetterRepository
from waflow.store.engine import create_engine, default_url, normalize_url
from waflow.store.inbox import InboxRepository
from waflow.store.migrate import current_revision, head_revision, run_upgrade
from waflow.store.outbox import OutboxRepository
from waflow.store.sessions import SessionRepository
from waflow.store.statuses import StatusRepository
from waflow.store.templates import TemplateRepository
from waflow.store.timers import TimerRepository

_UPGRADE_LOCKS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = weakref.WeakKeyDictionary()


def _upgrade_lock() -> asyncio.Lock:
    loop = asyncio.get_running_loop()
    lock = _UPGRADE_LOCKS.get(loop)
    if lock is None:
        lock = _UPGRADE_LOCKS[loop] = asyncio.Lock()
    return lock


@asynccontextmanager
async def _sqlite_file_lock(database: str | None) -> AsyncIterator[None]:
    """An exclusive lock on `<database>.migrate-lock`, held across processes for one upgrade.

    SQLite's own write lock does not serialise upgrades reliably: under load a second process was
    seen applying a revision the first had already applied ("index ... already exists"). A file
    lock beside the database is a plain cross-process mutex, taken before any connection is made.
    """
    if not database or database == ":memory:":
        yield
        return
    fd = os.open(f"{database}.migrate-lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        await asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


class _WriteGate:
    """This process's queue for SQLite's single write lock.

    Without it, two write transactions of one process (the inbox writer's group commit and the
    status processor's batch, say) meet inside SQLite, whose busy handler *sleeps* 1, 2, 5, 10 ...
    100 ms between retries: measured under the ingest bench, that turned a 2 ms commit into
    100-500 ms answers. Here a writer waits on an asyncio future and gets the lock the moment the
    previous one commits. Foreground writers go before `background` ones (the status processor
    must never delay the 200 of a webhook), unless a background writer has waited
    `BACKGROUND_MAX_WAIT_S`: under a saturating load the foreground queue is never empty, and
    background work that never runs is a backlog that only grows. A task that already holds the gate passes through, so
    nested `begin()` calls behave as before (SQLite itself then refuses the inner one). Other
    processes are still arbitrated by SQLite's `busy_timeout`.
    """

    BACKGROUND_MAX_WAIT_S = 0.05

    def __init__(self) -> None:
        self._owner: asyncio.Task[Any] | None = None
        self._depth = 0
        self._front: collections.deque[tuple[asyncio.Task[Any], asyncio.Future[None], float]] = collections.deque()
        self._back: collections.deque[tuple[asyncio.Task[Any], asyncio.Future[None], float]] = collections.deque()

    @property
    def foreground_waiting(self) -> bool:
        return bool(self._front)

    async def acquire(self, *, background: bool = False) -> None:
        task = asyncio.current_task()
        assert task is not None
        if self._owner is task:
            self._depth += 1
            return
        if self._owner is None and not self._front and (not background or not self._back):
            self._owner, self._depth = task, 1
            return
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        queue = self._back if background else self._front
        entry = (task, fut, loop.time())
        queue.append(entry)
        try:
            await fut
        except BaseException:
            if fut.done() and not fut.cancelled():
                self.release()  # handed over just as we were cancelled: pass it on
            else:
                queue.remove(entry)
            raise

    def release(self) -> None:
        self._depth -= 1
        if self._depth:
            return
        self._owner = None
        order = (self._front, self._back)
        if self._back and asyncio.get_running_loop().time() - self._back[0][2] > self.BACKGROUND_MAX_WAIT_S:
            order = (self._back, self._front)
        for queue in order:
            while queue:
                task, fut, _since = queue.popleft()
                if fut.done():
                    continue
                self._owner, self._depth = task, 1
                fut.set_result(None)
                return


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
    consent = ConsentRepository()
    dead_letters = DeadLetterRepository()
    outbox = OutboxRepository()
    statuses = StatusRepository()
    sessions = SessionRepository()
    timers = TimerRepository()
    templates = TemplateRepository()

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._gates: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _WriteGate] = weakref.WeakKeyDictionary()

    def _gate(self) -> _WriteGate | None:
        if self.engine.dialect.name != "sqlite":
            return None  # PostgreSQL: many writers at once, row locks arbitrate
        loop = asyncio.get_running_loop()
        gate = self._gates.get(loop)
        if gate is None:
            gate = self._gates[loop] = _WriteGate()
        return gate

    @property
    def writers_waiting(self) -> bool:
        """Whether a foreground write transaction of this process waits for SQLite's write lock."""
        gate = self._gates.get(asyncio.get_running_loop()) if self.engine.dialect.name == "sqlite" else None
        return gate is not None and gate.foreground_waiting

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

        Safe to call from several processes at once (PostgreSQL: advisory lock; SQLite: a lock file
        beside the database); within one process, calls run one at a time (Alembic's context is
        process-global).
        """
        sqlite_file = self.url.database if self.dialect == "sqlite" else None
        async with _upgrade_lock(), _sqlite_file_lock(sqlite_file), self.engine.connect() as conn:
            await conn.run_sync(run_upgrade, revision)
            await conn.commit()

    async def revision(self) -> str | None:
        """The schema revision the database is at (None for an empty database)."""
        async with self.read() as conn:
            return await conn.run_sync(current_revision)

    async def is_current(self) -> bool:
        return await self.revision() == head_revision()

    @asynccontextmanager
    async def begin(self, *, background: bool = False) -> AsyncIterator[AsyncConnection]:
        """A write transaction (SQLite: `BEGIN IMMEDIATE`, queued in-process behind `_WriteGate`).

        `background=True` (bulk housekeeping such as applying statuses) lets every waiting
        foreground writer of this process go first on SQLite.
        """
        gate = self._gate()
        if gate is None:
            async with self.engine.begin() as conn:
                yield conn
            return
        await gate.acquire(background=background)
        try:
            async with self.engine.begin() as conn:
                yield conn
        finally:
            gate.release()

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
