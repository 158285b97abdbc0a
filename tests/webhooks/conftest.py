"""Every webhook test that takes `store` runs on SQLite and on PostgreSQL.

PostgreSQL is skipped when unreachable, unless WAFLOW_REQUIRE_SERVICES=1 (then it fails).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from waflow.store import Store
from waflow.store.testing import sqlite_url, temporary_postgres_url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    if request.param == "sqlite":
        s = Store.open(sqlite_url(tmp_path))
        await s.upgrade()
        try:
            yield s
        finally:
            await s.close()
        return
    async with temporary_postgres_url() as url:
        s = Store.open(url)
        await s.upgrade()
        try:
            yield s
        finally:
            await s.close()
