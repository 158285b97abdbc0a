"""Revision 0006's counters and head marker are exact on every write path (compared with the rows themselves).

The counters (`outbound_counts`, `campaign_counts`) and `queue_head` are kept by triggers in the same
transaction as the rows; each step below writes through a real path (enqueue, bulk enqueue, campaign, claim,
release, accepted, failed, status webhooks incl. a reconciliation by callback data, lease recovery, a queue
re-keyed as a contact merge does, a delete) and then compares every count and every head with the truth
counted from `outbound_messages`.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import delete, func, select, update

from waflow.outbox.campaigns import campaign_progress, enqueue_campaign, pause_campaign, resume_campaign
from waflow.store import Store
from waflow.store.campaigns import CampaignRepository
from waflow.store.outbox import Acceptance, Failure, NewOutbound, Release
from waflow.store.tables import outbound_counts as oc
from waflow.store.tables import outbound_messages as om
from waflow.store.types import utcnow

from .helpers import PNID, at, status, text_out

LEASE = timedelta(minutes=1)
OTHER = "999000111222"  # a second business number


async def truth(store: Store) -> tuple[Counter[tuple[str, str]], Counter[str], dict[int, Counter[str]], set[int]]:
    """Counted from the rows: (number, status), queued per reason, per campaign per status; the true heads."""
    async with store.read() as conn:
        rows = (await conn.execute(
            select(om.c.id, om.c.phone_number_id, om.c.contact_key, om.c.status, om.c.waiting_reason, om.c.campaign_id)
        )).all()  # fmt: skip
    by_status: Counter[tuple[str, str]] = Counter()
    reasons: Counter[str] = Counter()
    campaigns: dict[int, Counter[str]] = {}
    first: dict[tuple[str, str], int] = {}
    for r in rows:
        by_status[(r.phone_number_id, r.status)] += 1
        if r.status == "queued":
            reasons[r.waiting_reason or ""] += 1
            key = (r.phone_number_id, r.contact_key)
            first[key] = min(first.get(key, r.id), r.id)
        if r.campaign_id is not None:
            campaigns.setdefault(r.campaign_id, Counter())[r.status] += 1
    return by_status, reasons, campaigns, set(first.values())


async def assert_exact(store: Store) -> None:
    by_status, reasons, campaigns, heads = await truth(store)
    repo, camp = store.outbox, CampaignRepository()
    async with store.read() as conn:
        for number in {n for n, _ in by_status} | {PNID, OTHER}:
            want = {s: n for (p, s), n in by_status.items() if p == number}
            assert await repo.status_counts(conn, number) == want, number
            assert await repo.queued_count(conn, number) == want.get("queued", 0)
        total: Counter[str] = Counter()
        for (_p, s), n in by_status.items():
            total[s] += n
        assert await repo.status_counts(conn) == dict(total)
        assert await repo.waiting_counts(conn) == dict(reasons)
        for cid, want_c in campaigns.items():
            assert await camp.counts(conn, cid) == dict(want_c), cid
        assert await camp.counts_many(conn, list(campaigns)) == {c: dict(v) for c, v in campaigns.items()}
        marked = (await conn.execute(
            select(om.c.id).where(om.c.status == "queued", om.c.queue_head.is_(True))
        )).scalars().all()  # fmt: skip
    if store.dialect == "sqlite":  # one writer: the marker is exact
        assert set(marked) == heads, "queue_head must mark exactly the lowest queued id of each recipient"
    else:
        # Two writers racing on READ COMMITTED may both mark a row of one queue (revision 0006 says when);
        # the claim re-checks "no earlier queued row" on PostgreSQL, so an extra mark sends nothing out of
        # order. What must never happen is a queue whose head is unmarked: it would never be claimed.
        assert heads <= set(marked), "every queue's lowest queued id must be marked (claimable)"


async def test_counters_and_heads_follow_every_write_path(store: Store) -> None:
    repo = store.outbox
    now = utcnow()
    later = now + timedelta(seconds=5)
    async with store.begin() as conn:
        a1 = await repo.enqueue(conn, PNID, text_out("a1", "346001"), contact_key="346001", business_initiated=False)
        a2 = await repo.enqueue(conn, PNID, text_out("a2", "346001"), contact_key="346001", business_initiated=False)
        bulk = await repo.enqueue_many(conn, PNID, [
            NewOutbound(text_out(f"b{i}", f"34600{i % 3}"), contact_key=f"34600{i % 3}", business_initiated=False)
            for i in range(6)
        ])  # fmt: skip
        o1 = await repo.enqueue(conn, OTHER, text_out("o1", "346001"), contact_key="346001", business_initiated=False)
    await assert_exact(store)
    cid = await enqueue_campaign(
        store, name="c", phone_number_id=PNID, template="hello", language="en", contacts=[{"phone": "346001"},
        {"phone": "346777"}, {"phone": "346778"}],
    )  # fmt: skip
    await assert_exact(store)

    async with store.begin() as conn:
        claimed = await repo.claim_due(conn, "d1", limit=100, lease=LEASE, now=later)
    ids = {c.record.id for c in claimed}
    _by_status, _reasons, _campaigns, heads = await truth(store)
    assert ids == heads, "a claim takes exactly the heads that are due"
    assert a1 in ids and a2 not in ids and o1 in ids
    await assert_exact(store)  # claiming moves no count

    async with store.begin() as conn:
        await repo.release_many(conn, "d1", [Release(bulk[0], later, "pair"), Release(bulk[1], later, "throttled",
                                                                                      throttled=True)])
        await repo.record_accepted_many(conn, [Acceptance(a1, "wamid.a1", at(1)), Acceptance(o1, "wamid.o1", at(1))])
        await repo.record_failed_many(conn, [Failure(bulk[2], 131026, "permanent", "undeliverable")])
    await assert_exact(store)

    async with store.begin() as conn:  # a2 is the head now: claimed, its send started, then its lease expires
        again = await repo.claim_due(conn, "d2", limit=100, lease=LEASE, now=later)
        assert a2 in {c.record.id for c in again}
        assert await repo.mark_sending(conn, "d2", [a2], now=later) == {a2}
        assert await repo.recover_expired(conn, grace=timedelta(seconds=1), now=later + LEASE * 2) == [a2]
    await assert_exact(store)  # unknown_outcome is counted as a1's reason now

    async with store.begin() as conn:  # status webhooks: advance, fail without class, reconcile queued a2
        await store.statuses.apply_many(conn, [
            status("wamid.a1", "delivered", 2), status("wamid.o1", "failed", 2, error=131047, phone_number_id=OTHER),
            status("wamid.a2", "sent", 3, callback=f"wf:{a2}"),
        ])  # fmt: skip
    await assert_exact(store)
    async with store.read() as conn:
        assert [oid for oid, _code in await repo.unclassified_failures(conn)] == [o1]

    async with store.begin() as conn:  # a contact merge re-keys a queue to the survivor (contacts.py does this)
        await conn.execute(update(om).where(om.c.contact_key == "346002").values(contact_key="346000"))
    await assert_exact(store)
    async with store.begin() as conn:  # and a deleted row leaves its queue
        head = (await conn.execute(
            select(func.min(om.c.id)).where(om.c.contact_key == "346000", om.c.status == "queued")
        )).scalar_one()  # fmt: skip
        await conn.execute(delete(om).where(om.c.id == head))
    await assert_exact(store)
    assert (await campaign_progress(store, cid)) is not None


async def test_a_paused_campaign_is_not_claimed_and_resume_makes_it_due(store: Store) -> None:
    contacts = [{"phone": f"34681{i:04d}"} for i in range(5)]
    cid = await enqueue_campaign(store, name="p", phone_number_id=PNID, template="t", language="en", contacts=contacts)
    later = utcnow() + timedelta(seconds=5)
    assert await pause_campaign(store, cid)
    async with store.begin() as conn:
        assert not await store.outbox.any_due(conn, now=later)
        assert await store.outbox.claim_due(conn, "d", limit=10, lease=LEASE, now=later) == []
    progress = await campaign_progress(store, cid)
    assert progress is not None and (progress.status, progress.queued) == ("paused", 5)
    assert await resume_campaign(store, cid)
    async with store.begin() as conn:
        assert await store.outbox.any_due(conn, now=later)
        claimed = await store.outbox.claim_due(conn, "d", limit=10, lease=LEASE, now=later)
    assert sorted(c.record.contact_key for c in claimed) == sorted(c["phone"] for c in contacts)
    await assert_exact(store)


async def test_a_recipient_queue_leaves_in_order(store: Store) -> None:
    """Only the head is claimable; once it is accepted the next row is, and nothing else."""
    later = utcnow() + timedelta(seconds=5)
    async with store.begin() as conn:
        ids = await store.outbox.enqueue_many(
            conn, PNID, [NewOutbound(text_out(f"m{i}"), contact_key="346", business_initiated=False) for i in range(4)]
        )
    for n, oid in enumerate(ids):
        async with store.begin() as conn:
            claimed = await store.outbox.claim_due(conn, "d", limit=10, lease=LEASE, now=later)
            assert [c.record.id for c in claimed] == [oid]
            await store.outbox.record_accepted(conn, oid, f"wamid.m{n}", at(n))
    await assert_exact(store)


async def test_concurrent_writers_of_one_queue_keep_one_head(store_url: str) -> None:
    """Enqueues, acceptances and failures of the same recipients from two stores at once (PostgreSQL: two
    connections racing on READ COMMITTED) leave every queue's head claimable and the counts exact."""
    stores = [Store.open(store_url) for _ in range(2)]
    await stores[0].upgrade()
    try:
        keys = [f"3469{i}" for i in range(4)]
        async with stores[0].begin() as conn:
            first = await stores[0].outbox.enqueue_many(
                conn, PNID, [NewOutbound(text_out("x", k), contact_key=k, business_initiated=False) for k in keys]
            )

        async def enqueue(s: Store, k: str) -> None:
            async with s.begin() as conn:
                await s.outbox.enqueue_many(
                    conn, PNID, [NewOutbound(text_out("y", k), contact_key=k, business_initiated=False)] * 2
                )

        async def finish(s: Store, oid: int, ok: bool) -> None:
            async with s.begin() as conn:
                if ok:
                    await s.outbox.record_accepted(conn, oid, f"wamid.c{oid}", at(0))
                else:
                    await s.outbox.record_failed(conn, oid, 131026, "permanent", "x")

        jobs = [enqueue(stores[i % 2], k) for i in range(3) for k in keys]
        jobs += [finish(stores[n % 2], oid, n % 2 == 0) for n, oid in enumerate(first)]
        await asyncio.gather(*jobs)
        await assert_exact(stores[0])
    finally:
        for s in stores:
            await s.close()


async def test_fold_moves_the_shards_of_gone_connections_into_shard_0(store: Store) -> None:
    """PostgreSQL shards the counters per backend; a shard whose backend is gone is folded, counts unchanged."""
    if store.dialect != "postgresql":
        pytest.skip("SQLite keeps one shard")
    async with store.begin() as conn:
        await store.outbox.enqueue(conn, PNID, text_out(), contact_key="346", business_initiated=False)
        # a shard as a connection that has exited leaves it (no backend has this pid)
        await conn.execute(oc.insert().values(phone_number_id=PNID, status="queued", waiting_reason="", shard=-7, n=2))
        await conn.execute(oc.insert().values(phone_number_id=PNID, status="sent", waiting_reason="", shard=-7, n=-2))
    async with store.read() as conn:
        before = await store.outbox.status_counts(conn, PNID)
    async with store.begin() as conn:
        assert await store.outbox.fold_counters(conn) == 2
    async with store.read() as conn:
        assert await store.outbox.status_counts(conn, PNID) == before
        assert (await conn.execute(select(func.count()).select_from(oc).where(oc.c.shard == -7))).scalar_one() == 0
    # the fake shard said +2 queued, -2 sent: the counts are the rows' own, shifted by exactly that
    by_status, _reasons, _campaigns, _heads = await truth(store)
    assert before == {"queued": by_status[(PNID, "queued")] + 2, "sent": -2}
