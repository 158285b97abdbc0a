"""Engine, timer and admin-API statements at a real business's size (issue 12): each is an index lookup or a
bounded range on both databases (the harness and its rules: `tests/store/plans.py`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncConnection

from waflow.api import queries
from waflow.engine.runtime.worker import _FAILED_COLUMNS, _failed_unseen
from waflow.store import Store
from waflow.store.seeding import SeedInfo
from waflow.store.types import utcnow

from .plans import Big, assert_plans_bounded

on_session_loop = pytest.mark.asyncio(loop_scope="session")  # the seeded stores live on the session's loop

Case = Callable[[Store, AsyncConnection, SeedInfo], Awaitable[Any]]


async def _failure_probe(_s: Store, c: AsyncConnection, _i: SeedInfo) -> Any:
    # the engine's maintenance round (`EngineWorker.collect_failures`): the look, then the claim
    await c.execute(_failed_unseen(c, ("id",), 1))
    return (await c.execute(_failed_unseen(c, _FAILED_COLUMNS, 500))).all()


async def _fire(s: Store, c: AsyncConnection, _i: SeedInfo) -> Any:
    due = await s.timers.due(c, utcnow(), 500)
    return await s.timers.mark_fired(c, [t.id for t in due[:50]] or [1], utcnow())


async def _handoff(_s: Store, c: AsyncConnection, _i: SeedInfo) -> Any:
    queue = await queries.handoff_queue(c, limit=50, messages=20)
    assert queue, "the seeded data has sessions in handoff"
    return queue


async def _session_detail(_s: Store, c: AsyncConnection, i: SeedInfo) -> Any:
    found = await queries.session_with_contact(c, i.session_id)
    assert found is not None
    s, contact = found
    return await queries.timeline(c, contact.phone_number_id, contact.contact_key, since=s.started_at, limit=100)


async def _consent_set(s: Store, c: AsyncConnection, i: SeedInfo) -> Any:
    contact = await s.contacts.get(c, i.phone_number_id, i.contact_key)
    assert contact is not None
    out = await s.consent.set(c, contact, opted_out=not contact.opted_out, source="api", actor="plans")
    assert out.changed
    return out


CASES: dict[str, Case] = {
    "engine.failure_probe": _failure_probe,
    "timers.any_due": lambda s, c, _: s.timers.any_due(c, utcnow()),
    "timers.due + mark_fired": _fire,
    "timers.cancel_for_session": lambda s, c, i: s.timers.cancel_for_session(c, i.session_id),
    "timers.any_settled": lambda s, c, _: s.timers.any_settled(c),
    "timers.sweep_settled": lambda s, c, _: s.timers.sweep_settled(c, 500),
    "api.list_contacts(number)": lambda _, c, i: queries.list_contacts(
        c, phone_number_id=i.phone_number_id, after=None, limit=50
    ),
    "api.list_contacts(number, after)": lambda _, c, i: queries.list_contacts(
        c, phone_number_id=i.phone_number_id, after=i.contact_id, limit=50
    ),
    "api.list_contacts": lambda _, c, __: queries.list_contacts(c, phone_number_id=None, after=None, limit=50),
    "api.contact timeline": lambda _, c, i: queries.timeline(c, i.phone_number_id, i.contact_key, limit=100),
    "api.session detail": _session_detail,
    "api.list_sessions": lambda _, c, __: queries.list_sessions(c, state=None, flow_id=None, before=None, limit=50),
    "api.list_sessions(state)": lambda _, c, __: queries.list_sessions(
        c, state="waiting", flow_id=None, before=None, limit=50
    ),
    "api.list_sessions(flow)": lambda _, c, i: queries.list_sessions(
        c, state=None, flow_id=i.flow_id, before=None, limit=50
    ),
    "api.list_sessions(flow, state, before)": lambda _, c, i: queries.list_sessions(
        c, state="ended", flow_id=i.flow_id, before=i.session_id, limit=50
    ),
    "api.list_messages(contact)": lambda _, c, i: queries.list_messages(
        c, phone_number_id=None, contact_key=i.contact_key, status=None, before=None, limit=50,
        numbers=[i.phone_number_id],
    ),
    "api.list_messages(contact, two numbers)": lambda _, c, i: queries.list_messages(
        c, phone_number_id=None, contact_key=i.contact_key, status=None, before=None, limit=50,
        numbers=[i.phone_number_id, "999"],
    ),
    "api.list_messages": lambda _, c, __: queries.list_messages(
        c, phone_number_id=None, contact_key=None, status=None, before=None, limit=50
    ),
    "api.handoff queue": _handoff,
    "consent.history": lambda s, c, i: s.consent.history(c, i.contact_id),
    "consent.set": _consent_set,
}


# The unfiltered lists are the newest (oldest) `limit` rows of a table: SQLite walks the table in rowid order
# and stops after a page (`SCAN t` under the LIMIT, no sort) — the top-N the harness excuses for an index walk,
# here on the table's own b-tree. (PostgreSQL's plan, a backward primary-key walk under a Limit, passes as is.)
# PostgreSQL, which knows from its statistics that (almost) every contact is of the one seeded number and not
# merged, and that most sessions of a flow have ended, walks the primary key in order under the Limit and
# filters: it reads about a page, which its estimate of the whole walk does not show.
_PK_CONTACTS = "Index Scan using pk_contacts on contacts"
ALLOW: dict[str, tuple[str, ...]] = {
    "api.list_contacts(number)": (_PK_CONTACTS,),
    "api.list_contacts(number, after)": (_PK_CONTACTS,),
    "api.list_sessions(flow, state, before)": ("Index Scan Backward using pk_sessions on sessions",),
    "api.list_contacts": ("SCAN contacts", _PK_CONTACTS),
    "api.list_sessions": ("SCAN sessions",),
    "api.list_messages": ("SCAN outbound_messages",),
}


@on_session_loop
@pytest.mark.parametrize("name", list(CASES))
async def test_engine_api_statement_is_bounded(big_store: Big, name: str) -> None:
    store, info = big_store
    case = CASES[name]
    await assert_plans_bounded(store, name, lambda conn: case(store, conn, info), allow=ALLOW.get(name, ()))
