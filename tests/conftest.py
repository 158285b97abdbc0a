"""Shared fixtures: `store_url` / `store` run a test on a SQLite file and on a fresh PostgreSQL database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from waflow.store import Store
from waflow.store.testing import PostgresUnavailable, services_required, sqlite_url, temporary_postgres_url


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
async def store(store_url: str) -> AsyncIterator[Store]:
    """An upgraded store on each backend."""
    store = Store.open(store_url)
    await store.upgrade()
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[Store]:
    """An upgraded store on a SQLite file (for what only SQLite has: the write gate, the one-hop writes)."""
    store = Store.open(sqlite_url(tmp_path))
    await store.upgrade()
    try:
        yield store
    finally:
        await store.close()
