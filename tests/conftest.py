"""Shared fixtures: `store_url` / `store` run a test on a SQLite file and on a fresh PostgreSQL database.

`store_url` is an empty database. `store` is one at the newest revision, copied from a template that is
migrated once per test session (SQLite: the file copied with the backup API; PostgreSQL: `CREATE DATABASE
... TEMPLATE`), so the hundreds of tests that need a store pay for Alembic's run once, not each (~0.25 s per
test and dialect). The migrations themselves are tested from empty databases in `tests/store/test_migrations.py`.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from waflow.store import Store
from waflow.store.testing import (
    PostgresUnavailable,
    admin_urls,
    services_required,
    sqlite_url,
    temporary_postgres_url,
)


class _Templates:
    """Migrated template databases, built on first use, one per dialect and session."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.sqlite: Path | None = None
        self.postgres: tuple[str, str] | None = None  # (admin URL of the server, template database name)

    async def sqlite_copy(self, target: Path) -> None:
        if self.sqlite is None:
            path = self.folder / "template.db"
            store = Store.open(sqlite_url(self.folder, path.name))
            await store.upgrade()
            await store.close()
            self.sqlite = path
        os.close(os.open(target, os.O_CREAT | os.O_WRONLY, 0o600))  # private, like the store creates its file
        source, copy = sqlite3.connect(self.sqlite), sqlite3.connect(target)
        try:
            source.backup(copy)
        finally:
            source.close()
            copy.close()

    async def postgres_copy(self, url: str) -> None:
        """Replace the (empty) database of `url` by a copy of the migrated template."""
        target = make_url(url)
        # the server's admin database, as `temporary_postgres_url` connected to it to create this one
        admin = next(a for a in admin_urls() if a.username == target.username).set(
            password=target.password, host=target.host, port=target.port
        )
        if self.postgres is None:
            name = f"waflow_tpl_{secrets.token_hex(6)}"
            await _admin(admin.render_as_string(hide_password=False), f'CREATE DATABASE "{name}"')
            store = Store.open(target.set(database=name).render_as_string(hide_password=False))
            await store.upgrade()
            await store.close()  # a template must have no connections while it is copied
            self.postgres = (admin.render_as_string(hide_password=False), name)
        admin_url, name = self.postgres
        await _admin(admin_url, f'DROP DATABASE "{target.database}" WITH (FORCE)',
                     f'CREATE DATABASE "{target.database}" TEMPLATE "{name}"')

    def drop(self) -> None:
        if self.postgres is not None:
            admin_url, name = self.postgres
            asyncio.run(_admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _admin(url: str, *statements: str) -> None:
    engine = create_async_engine(url, isolation_level="AUTOCOMMIT", connect_args={"timeout": 5})
    try:
        async with engine.connect() as conn:
            for statement in statements:
                await conn.execute(text(statement))
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
def _store_templates(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Templates]:
    templates = _Templates(tmp_path_factory.mktemp("store-templates"))
    yield templates
    templates.drop()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A URL to an empty database of each backend (PostgreSQL: a fresh database per test)."""
    if request.param == "sqlite":
        yield sqlite_url(tmp_path)
        return
    try:
        async with temporary_postgres_url() as url:
            yield url
    except PostgresUnavailable as exc:
        if services_required():
            pytest.fail(f"PostgreSQL required (WAFLOW_REQUIRE_SERVICES=1) but unreachable: {exc}")
        pytest.skip(f"PostgreSQL unreachable: {exc}")


@pytest.fixture
async def store(store_url: str, _store_templates: _Templates) -> AsyncIterator[Store]:
    """A store at the newest revision on each backend (on `store_url`'s database)."""
    url = make_url(store_url)
    if url.get_backend_name() == "sqlite":
        assert url.database
        await _store_templates.sqlite_copy(Path(url.database))
    else:
        await _store_templates.postgres_copy(store_url)
    store = Store.open(store_url)
    assert await store.is_current(), "the template copy is not at the newest revision"
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture
async def sqlite_store(tmp_path: Path, _store_templates: _Templates) -> AsyncIterator[Store]:
    """A store at the newest revision on a SQLite file (for what only SQLite has: the write gate, the one-hop
    writes)."""
    path = tmp_path / "waflow.db"
    await _store_templates.sqlite_copy(path)
    store = Store.open(sqlite_url(tmp_path))
    try:
        yield store
    finally:
        await store.close()
