"""The engine's fair-round statements (issue 16) at a real business's size: the window of open events, a round's
events by id, and the backlog cap's UPDATE are index lookups or bounded ranges (`tests/store/plans.py`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncConnection

from waflow.engine.runtime.batch import load_batch_ids, load_window, shed_backlog
from waflow.store import Store
from waflow.store.seeding import SeedInfo
from waflow.store.types import utcnow

from .plans import Big, assert_plans_bounded

on_session_loop = pytest.mark.asyncio(loop_scope="session")  # the seeded stores live on the session's loop

Case = Callable[[Store, AsyncConnection, SeedInfo], Awaitable[Any]]


async def _window_then_ids(_s: Store, c: AsyncConnection, _i: SeedInfo) -> Any:
    window = await load_window(c, 116)
    assert window, "the seeded data has open engine events"
    return await load_batch_ids(c, [row.id for row in window[:16]])


async def _shed(_s: Store, c: AsyncConnection, i: SeedInfo) -> Any:
    return await shed_backlog(c, (i.phone_number_id, i.pending_contact_key), 100, "over_backlog_cap: plans", utcnow())


CASES: dict[str, Case] = {
    "engine.load_window + load_batch_ids": _window_then_ids,
    "engine.shed_backlog": _shed,
}


@on_session_loop
@pytest.mark.parametrize("name", list(CASES))
async def test_fair_round_statement_is_bounded(big_store: Big, name: str) -> None:
    store, info = big_store
    case = CASES[name]
    await assert_plans_bounded(store, name, lambda conn: case(store, conn, info))
