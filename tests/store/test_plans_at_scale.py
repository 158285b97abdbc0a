"""Hot statements at a real business's size: every plan is an index lookup or a bounded range (issue 12).

Each case runs real repository code on the seeded stores of `tests/store/plans.py` (SQLite and
PostgreSQL, `PLAN_SIZES`) and fails when a statement it sends reads a big table whole or sorts it.
A new hot statement gets a case here (or in a `test_plans_<area>.py` of its own, importing `plans`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from waflow.canonical import ContactRef, DeliveryStatus, EventKind, InboundMessage, StatusUpdate
from waflow.engine.runtime.batch import load_batch
from waflow.engine.runtime.state import load_active
from waflow.store import NewInboundEvent, Store
from waflow.store.seeding import SeedInfo
from waflow.store.types import utcnow

from .plans import Big, assert_plans_bounded, bad_plan_lines, findings

# the seeded stores (bound, not imported: a test argument named like an imported name is F811 to ruff)

on_session_loop = pytest.mark.asyncio(loop_scope="session")  # the seeded stores live on the session's loop

Case = Callable[[Store, AsyncConnection, SeedInfo], Awaitable[Any]]


def _message(info: SeedInfo, wamid: str, wa_id: str) -> InboundMessage:
    return InboundMessage(
        phone_number_id=info.phone_number_id,
        message_id=wamid,
        contact=ContactRef(wa_id=wa_id, profile_name="Ana"),
        timestamp=utcnow(),
        type="text",
        text="hola",
        content={"body": "hola"},
    )


def _status(info: SeedInfo, wamid: str, value: DeliveryStatus) -> StatusUpdate:
    return StatusUpdate(
        phone_number_id=info.phone_number_id,
        message_id=wamid,
        status=value,
        timestamp=utcnow(),
        recipient_id="34600000001",
    )


async def _insert_new_event(s: Store, c: AsyncConnection, info: SeedInfo) -> Any:
    row = NewInboundEvent.from_message(_message(info, "wamid.NEW1", info.idle_contact_key), utcnow()).row()
    ids = await s.inbox.insert_rows(c, [row])
    assert ids[0] is not None
    return ids


async def _apply_read(s: Store, c: AsyncConnection, info: SeedInfo) -> Any:
    [result] = await s.statuses.apply_many(c, [_status(info, info.delivered_wamid, DeliveryStatus.READ)])
    assert result.outbound_id == info.delivered_outbound_id
    return result


async def _claim_due(s: Store, c: AsyncConnection, _info: SeedInfo) -> Any:
    rows = await s.outbox.claim_due(c, "plans", limit=50, lease=timedelta(minutes=1))
    assert rows, "nothing claimed: the seeded queue is due"
    return rows


async def _upsert_existing(s: Store, c: AsyncConnection, info: SeedInfo) -> Any:
    return await s.contacts.upsert_from_inbound(c, info.phone_number_id, ContactRef(wa_id=info.contact_key), utcnow())


async def _upsert_new(s: Store, c: AsyncConnection, info: SeedInfo) -> Any:
    return await s.contacts.upsert_from_inbound(c, info.phone_number_id, ContactRef(wa_id="34699999999"), utcnow())


# name -> what to run. Add yours; a statement found bad that someone is fixing may carry an xfail mark
# (`pytest.param(..., marks=pytest.mark.xfail(reason=...))` in the parametrize list below) until it is fixed.
CASES: dict[str, Case] = {
    "inbox.insert_rows(new event)": _insert_new_event,
    "inbox.claim_pending(message)": lambda s, c, _: s.inbox.claim_pending(c, EventKind.MESSAGE, limit=100),
    "inbox.claim_payloads(status)": lambda s, c, _: s.inbox.claim_payloads(c, EventKind.STATUS, limit=1000),
    "inbox.pending_for_contact": lambda s, c, i: s.inbox.pending_for_contact(
        c, i.phone_number_id, i.pending_contact_key, limit=100
    ),
    "outbox.any_due": lambda s, c, _: s.outbox.any_due(c),
    "outbox.claim_due": _claim_due,
    "outbox.by_provider_id": lambda s, c, i: s.outbox.by_provider_id(c, i.delivered_wamid),
    "statuses.apply_many(known wamid)": _apply_read,
    "sessions.active_for_contact": lambda s, c, i: s.sessions.active_for_contact(c, i.contact_id),
    "engine.load_active": lambda _, c, i: load_active(c, i.contact_id),
    "engine.load_batch": lambda _, c, __: load_batch(c, 100),
    "contacts.get": lambda s, c, i: s.contacts.get(c, i.phone_number_id, i.contact_key),
    "contacts.upsert_from_inbound(existing)": _upsert_existing,
    "contacts.upsert_from_inbound(new)": _upsert_new,
}


@on_session_loop
@pytest.mark.parametrize("name", list(CASES))
async def test_hot_statement_is_bounded(big_store: Big, name: str) -> None:
    store, info = big_store
    case = CASES[name]
    await assert_plans_bounded(store, name, lambda conn: case(store, conn, info))


# ---- the harness sees what it must ----


@on_session_loop
async def test_harness_catches_a_full_scan_and_a_sort(big_store: Big) -> None:
    """Deliberately unindexed: filtering on a column no index has, and ordering a big table by it."""
    store, _info = big_store

    async def run(conn: AsyncConnection) -> None:
        await conn.execute(text("SELECT id FROM contacts WHERE profile_name = 'Contact 17'"))
        await conn.execute(text("SELECT id FROM outbound_messages ORDER BY error_text, created_at LIMIT 10"))

    statements, found = await findings(store, run)
    assert len(statements) == 2
    bad = {f.statement.sql.split()[3]: f.bad for f in found if not f.generic}
    assert set(bad) == {"contacts", "outbound_messages"}, found
    if store.dialect == "sqlite":
        assert bad["contacts"] == ["SCAN contacts"]
        assert "SCAN outbound_messages" in bad["outbound_messages"]
        assert "USE TEMP B-TREE FOR ORDER BY" in bad["outbound_messages"]
    else:
        assert any(line.startswith("Seq Scan on contacts") for line in bad["contacts"]), bad
        assert any("Sort" in line for line in bad["outbound_messages"]) or any(
            "Seq Scan on outbound_messages" in line for line in bad["outbound_messages"]
        ), bad


@on_session_loop
async def test_harness_catches_a_bound_partial_index_filter(big_store: Big) -> None:
    """`state IN (?, ?)` bound instead of written into the statement (the regression `dialect.const` fixed)."""
    store, _info = big_store

    async def run(conn: AsyncConnection) -> None:
        await conn.execute(
            text("SELECT id FROM inbound_events WHERE state IN (:a, :b) AND kind = 'status' ORDER BY id LIMIT 100"),
            {"a": "pending", "b": "failed"},
        )

    _statements, found = await findings(store, run)
    if store.dialect == "sqlite":
        assert [f.bad for f in found] == [["SCAN inbound_events"]]
    else:  # the custom plan sees the values; the generic plan cannot use the partial index
        assert any(f.generic for f in found), found


def test_rules_on_known_plans() -> None:
    """The rules on plan text, without a database: what is excused and what is not."""
    sqlite_top_n = ["SCAN outbound_messages USING INDEX ix_outbound_messages_queued_due"]
    assert bad_plan_lines(sqlite_top_n, sql="SELECT id FROM outbound_messages ORDER BY due_at LIMIT 1") == []
    assert bad_plan_lines(sqlite_top_n, sql="SELECT id FROM outbound_messages ORDER BY due_at") == sqlite_top_n
    low = ["SEARCH contacts USING INDEX uq_contacts_phone_number_id_contact_key (phone_number_id=?)"]
    assert bad_plan_lines(low, sql="SELECT * FROM contacts WHERE phone_number_id = ?") == low
    key = ["SEARCH contacts USING INDEX uq_contacts_phone_number_id_contact_key (phone_number_id=? AND contact_key=?)"]
    assert bad_plan_lines(key, sql="SELECT * FROM contacts WHERE phone_number_id = ? AND contact_key = ?") == []
    sorted_all = [
        "SEARCH contacts USING INDEX uq_contacts_phone_number_id_contact_key (phone_number_id=?)",
        "USE TEMP B-TREE FOR ORDER BY",
    ]
    assert bad_plan_lines(sorted_all, sql="SELECT * FROM contacts WHERE phone_number_id = ? ORDER BY x LIMIT 5") == (
        sorted_all
    )
    alias = ["SCAN earlier"]
    assert bad_plan_lines(alias, sql="SELECT 1 FROM outbound_messages AS earlier") == alias
    pg_top_n = [
        "Limit  (cost=0.42..1.00 rows=50 width=8)",
        "  ->  Index Scan Backward using contacts_pkey on contacts  (cost=0.42..9000.00 rows=100000 width=8)",
    ]
    assert bad_plan_lines(pg_top_n) == []
    pg_sort = [
        "Limit  (cost=9000.00..9000.10 rows=50 width=8)",
        "  ->  Sort  (cost=9000.00..9250.00 rows=100000 width=8)",
        "        Sort Key: created_at",
        "        ->  Index Scan using ix_x on contacts  (cost=0.42..8000.00 rows=100000 width=8)",
        "              Index Cond: ((phone_number_id)::text = '1'::text)",
    ]
    assert [line.split("  (")[0] for line in bad_plan_lines(pg_sort)] == [
        "->  Sort",
        "->  Index Scan using ix_x on contacts",
    ]
