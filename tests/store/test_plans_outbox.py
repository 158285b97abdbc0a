"""The outbox's per-claim, per-tick and per-scrape statements at a real business's size (issue 12).

Each case runs the real repository code on the seeded big stores of `tests/store/plans.py` (SQLite and
PostgreSQL) and fails when a statement it sends reads a big table whole or sorts it: the dispatcher's claim
(its lanes, the lease, the window input), the outcome writes, the maintenance tick (unclassified failures,
campaign and queue counters, the counter fold), pause / resume, `/metrics`. The statements the triggers of
revision 0006 run inside those writes are not sent by the application, so the harness cannot see them:
they are explained here one by one, with the parameters a trigger would bind.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncConnection

from waflow.canonical import OutboundMessage
from waflow.store import Store
from waflow.store.campaigns import CampaignRepository
from waflow.store.gauges import scrape_counts
from waflow.store.outbox import Acceptance, Failure, NewOutbound, Release
from waflow.store.seeding import SeedInfo
from waflow.store.types import utcnow

from .plans import Big, assert_plans_bounded, bad_plan_lines, plan_of

on_session_loop = pytest.mark.asyncio(loop_scope="session")

Case = Callable[[Store, AsyncConnection, SeedInfo], Awaitable[Any]]
LEASE = timedelta(minutes=1)


async def _claim(s: Store, c: AsyncConnection, i: SeedInfo) -> Any:
    rows = await s.outbox.claim_due(c, "plans", limit=128, lease=LEASE, phone_number_ids=[i.phone_number_id])
    assert rows, "nothing claimed: the seeded queue is due"
    return rows


async def _claim_campaigns(s: Store, c: AsyncConnection, _i: SeedInfo) -> Any:
    """Replies before bulk, campaigns round-robin: a number with one reply and two running campaigns, one short
    of its share of the claim, so every statement of the claim runs (the reply lane, both rounds of the
    campaign lanes). A number of its own: the seeded one has replies enough to fill any claim."""
    number = "15550001111"
    repo = CampaignRepository()
    cids = [await repo.create(c, name=f"plans {k}", phone_number_id=number, template="promo", language="en_US",
                              params=[]) for k in range(2)]  # fmt: skip

    def row(to: str, campaign_id: int | None) -> NewOutbound:
        message = OutboundMessage(to=to, type="text", content={"body": "x"})
        return NewOutbound(message, contact_key=to, business_initiated=campaign_id is not None, campaign_id=campaign_id)

    items = [row("34690000000", None), *(row(f"3469100{k:04}", cids[0]) for k in range(3)),
             *(row(f"3469200{k:04}", cids[1]) for k in range(40))]  # fmt: skip
    await s.outbox.enqueue_many(c, number, items)
    later = utcnow() + timedelta(seconds=1)
    rows = await s.outbox.claim_due(c, "plans", limit=20, lease=LEASE, now=later, phone_number_ids=[number])
    assert len(rows) == 20 and rows[0].record.campaign_id is None, "the reply first, then both campaigns"
    return rows


async def _claim_window(s: Store, c: AsyncConnection, i: SeedInfo) -> Any:
    """What the dispatcher's claim transaction sends: the claim, then the recipients' contacts."""
    rows = await _claim(s, c, i)
    keys = [r.record.contact_key for r in rows]
    found = await s.outbox.recipients(c, i.phone_number_id, keys)
    assert found, "the claimed rows' contacts exist"
    return found


async def _accept(s: Store, c: AsyncConnection, i: SeedInfo) -> Any:
    rows = await _claim(s, c, i)
    return await s.outbox.record_accepted_many(
        c, [Acceptance(r.record.id, f"wamid.PLAN{r.record.id}") for r in rows[:50]]
    )


async def _fail(s: Store, c: AsyncConnection, i: SeedInfo) -> Any:
    rows = await _claim(s, c, i)
    return await s.outbox.record_failed_many(c, [Failure(r.record.id, 131026, "permanent", "x") for r in rows[:50]])


async def _release(s: Store, c: AsyncConnection, i: SeedInfo) -> Any:
    rows = await _claim(s, c, i)
    later = utcnow() + timedelta(seconds=30)
    await s.outbox.release_many(c, "plans", [Release(r.record.id, later, "pair") for r in rows[:50]])
    return rows


async def _enqueue(s: Store, c: AsyncConnection, i: SeedInfo) -> Any:
    keys = (i.queued_contact_key, i.contact_key, i.idle_contact_key)
    message = OutboundMessage(to=i.contact_key, type="text", content={"body": "x"})
    items = [NewOutbound(message, contact_key=key, business_initiated=False) for key in keys]
    return await s.outbox.enqueue_many(c, i.phone_number_id, items)


async def _maintenance(s: Store, c: AsyncConnection, _i: SeedInfo) -> Any:
    """The dispatcher's tick (`OutboxDispatcher.maintenance`), statement for statement."""
    campaigns = CampaignRepository()
    await s.outbox.unclassified_failures(c)
    active = await campaigns.running_ids(c)
    counts = await campaigns.counts_many(c, active)
    await campaigns.paused_ids(c)
    await s.outbox.waiting_counts(c)
    await s.outbox.fold_counters(c)
    return counts


async def _pause_resume(s: Store, c: AsyncConnection, i: SeedInfo) -> Any:
    campaigns = CampaignRepository()
    assert await campaigns.set_status(c, i.campaign_id, "paused", only_from=("running",))
    assert await campaigns.set_status(c, i.campaign_id, "running", only_from=("paused",))
    return await campaigns.counts(c, i.campaign_id)


CASES: dict[str, Case] = {
    "outbox.any_due(numbers)": lambda s, c, i: s.outbox.any_due(c, phone_number_ids=[i.phone_number_id]),
    "outbox.any_due": lambda s, c, _: s.outbox.any_due(c),
    "outbox.claim_due(numbers)": _claim,
    "outbox.claim_due + recipients": _claim_window,
    "outbox.claim_due(replies, campaigns round-robin)": _claim_campaigns,
    "outbox.record_accepted_many": _accept,
    "outbox.record_failed_many": _fail,
    "outbox.release_many": _release,
    "outbox.enqueue_many": _enqueue,
    "outbox.queued_count": lambda s, c, i: s.outbox.queued_count(c, i.phone_number_id),
    # the gate of a resend after an unknown outcome (the seeded inbox has pending statuses)
    "inbox.oldest_pending_status_at": lambda s, c, _: s.inbox.oldest_pending_status_at(c),
    "outbox.get": lambda s, c, i: s.outbox.get(c, i.queued_outbound_id),
    "dispatcher.maintenance": _maintenance,
    "campaigns.counts": lambda _, c, i: CampaignRepository().counts(c, i.campaign_id),
    "campaigns.pause + resume": _pause_resume,
    # a campaign's skipped (opted-out) rows, read by its progress (revision 0008's partial index)
    "campaigns.opted_out_count": lambda _, c, i: CampaignRepository().opted_out_count(c, i.campaign_id),
}


@on_session_loop
@pytest.mark.parametrize("name", list(CASES))
async def test_outbox_statement_is_bounded(big_store: Big, name: str) -> None:
    store, info = big_store
    case = CASES[name]
    await assert_plans_bounded(store, name, lambda conn: case(store, conn, info))


@on_session_loop
async def test_metrics_scrape_is_bounded(big_store: Big) -> None:
    store, _info = big_store
    # The open inbox events are counted over the partial index of open events: the whole of that index is
    # the backlog (pending / failed rows), never the history, so walking it is the bounded read wanted.
    await assert_plans_bounded(
        store, "gauges.scrape_counts", lambda conn: scrape_counts(conn), allow=("ix_inbound_events_open_by_kind",)
    )


# ---- what the triggers run (one per row written; not sent by the application, so explained here) ----

_O = "outbound_messages"
TRIGGER_STATEMENTS = {
    # a new queued row: is there an earlier queued row of its recipient? (the head trigger on INSERT)
    "head probe": (
        f"SELECT 1 FROM {_O} AS e WHERE e.phone_number_id = {{p}} AND e.contact_key = {{k}} "
        f"AND e.status = 'queued' AND e.id < {{id}}"
    ),
    # a row left its queue: promote the recipient's lowest queued row (the head trigger on UPDATE / DELETE)
    "promotion": (
        f"UPDATE {_O} SET queue_head = true WHERE id = (SELECT min(id) FROM {_O} WHERE phone_number_id = {{p}} "
        f"AND contact_key = {{k}} AND status = 'queued') AND NOT queue_head"
    ),
    # a counter move (the counts trigger), here as the read it costs: one primary-key range
    "counter": "SELECT n FROM outbound_counts WHERE phone_number_id = {p} AND status = 'queued' "
    "AND waiting_reason = '' AND shard = 0",
}


@on_session_loop
@pytest.mark.parametrize("name", list(TRIGGER_STATEMENTS))
async def test_trigger_statement_is_bounded(big_store: Big, name: str) -> None:
    store, info = big_store
    sqlite = store.dialect == "sqlite"
    marks = {"p": "?" if sqlite else "$1", "k": "?" if sqlite else "$2", "id": "?" if sqlite else "$3"}
    sql = TRIGGER_STATEMENTS[name].format(**marks)
    if sqlite:
        sql = sql.replace("= true", "= 1")
    params: tuple[Any, ...] = (info.phone_number_id, info.queued_contact_key, info.queued_outbound_id)
    params = params[: sql.count("?") if sqlite else sum(f"${n}" in sql for n in (1, 2, 3))]
    for generic in (False, True) if not sqlite else (False,):
        plan = await plan_of(store, sql, params, generic=generic)
        assert not bad_plan_lines(plan, sql=sql), f"{name}: {plan}"
        assert any("outbound_messages" in line or "outbound_counts" in line for line in plan), plan
