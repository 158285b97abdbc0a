"""Per-recipient order when a status settles a row while its (re)send is in flight: the next row of that
recipient is not claimed until the lease ends (the recorder's release, or the lease running out)."""

from __future__ import annotations

from datetime import timedelta

from waflow.store import Store
from waflow.store.outbox import Acceptance, Release
from waflow.store.types import utcnow

from .helpers import PNID, status, text_out

LEASE = timedelta(minutes=1)
TO = "346009"


async def test_the_next_row_waits_for_a_settled_row_still_in_flight(store: Store) -> None:
    repo = store.outbox
    async with store.begin() as conn:
        first = await repo.enqueue(conn, PNID, text_out("first", TO), contact_key=TO, business_initiated=False)
        second = await repo.enqueue(conn, PNID, text_out("second", TO), contact_key=TO, business_initiated=False)
    now = utcnow() + timedelta(seconds=1)
    async with store.begin() as conn:
        assert [r.record.id for r in await repo.claim_due(conn, "d1", limit=10, lease=LEASE, now=now)] == [first]
    async with store.begin() as conn:  # the first send's late status (matched by its callback data) settles it
        await store.statuses.apply_many(conn, [status("wamid.first", "sent", callback=f"wf:{first}")])
        assert (await repo.get(conn, first)).status.value == "sent"  # type: ignore[union-attr]
    async with store.begin() as conn:  # ... while the resend's HTTP call still runs: the second row waits
        assert await repo.claim_due(conn, "d2", limit=10, lease=LEASE, now=now) == []
        assert await repo.any_due(conn, now=now), "it is the head, due: only the lease before it holds it"
    async with store.begin() as conn:  # the resend was accepted too: a conflict, released, the lease ends
        done = await repo.record_accepted_many(conn, [Acceptance(first, "wamid.resent", now)])
        assert done.conflicts == {first: "wamid.first"}
        await repo.release_many(conn, "d1", [Release(first, now, None)])
        got = await repo.claim_due(conn, "d2", limit=10, lease=LEASE, now=now)
    assert [r.record.id for r in got] == [second]


async def test_a_dead_dispatchers_lease_holds_the_next_row_only_until_it_expires(store: Store) -> None:
    repo = store.outbox
    async with store.begin() as conn:
        first = await repo.enqueue(conn, PNID, text_out("first", TO), contact_key=TO, business_initiated=False)
        second = await repo.enqueue(conn, PNID, text_out("second", TO), contact_key=TO, business_initiated=False)
    now = utcnow() + timedelta(seconds=1)
    async with store.begin() as conn:
        await repo.claim_due(conn, "dead", limit=10, lease=LEASE, now=now)
        await store.statuses.apply_many(conn, [status("wamid.first", "delivered", callback=f"wf:{first}")])
    async with store.begin() as conn:
        assert await repo.claim_due(conn, "d2", limit=10, lease=LEASE, now=now + LEASE / 2) == []
        later = await repo.claim_due(conn, "d2", limit=10, lease=LEASE, now=now + LEASE + timedelta(seconds=1))
    assert [r.record.id for r in later] == [second]


async def test_the_send_fence_refuses_a_lease_another_dispatcher_took_over(store: Store) -> None:
    """A dispatcher that stalled past its lease cannot mark (and so cannot send) a row recovered meanwhile; an
    untried row comes back due at once, a marked one with an unknown outcome after the grace."""
    repo = store.outbox
    async with store.begin() as conn:
        tried = await repo.enqueue(conn, PNID, text_out("tried", "346101"), contact_key="346101",
                                   business_initiated=False)
        untried = await repo.enqueue(conn, PNID, text_out("untried", "346102"), contact_key="346102",
                                     business_initiated=False)
    now = utcnow() + timedelta(seconds=1)
    async with store.begin() as conn:
        await repo.claim_due(conn, "stalled", limit=10, lease=LEASE, now=now)
        assert await repo.mark_sending(conn, "stalled", [tried], now=now) == {tried}
    after = now + LEASE + timedelta(seconds=1)
    async with store.begin() as conn:
        assert await repo.recover_expired(conn, grace=timedelta(seconds=30), now=after) == [tried]
        assert await repo.mark_sending(conn, "stalled", [untried], now=after) == set(), "not its lease any more"
        back = await repo.get(conn, untried)
        unknown = await repo.get(conn, tried)
    assert back is not None and back.outcome_unknown_since is None and back.due_at <= after
    assert unknown is not None and unknown.outcome_unknown_since is not None
    assert unknown.due_at >= after + timedelta(seconds=29)
    async with store.begin() as conn:  # another dispatcher takes the untried row at once
        got = await repo.claim_due(conn, "live", limit=10, lease=LEASE, now=after)
    assert [r.record.id for r in got] == [untried]


async def test_the_scrape_reads_the_lag(store: Store) -> None:
    """`/metrics`' lag gauges: the oldest open inbox event and the oldest due outbound row nobody claimed."""
    from waflow.store import NewInboundEvent
    from waflow.store.gauges import scrape_counts

    from .helpers import message

    async with store.read() as conn:
        idle = await scrape_counts(conn)
    assert (idle.oldest_open_event_at, idle.oldest_due_at) == (None, None)
    async with store.begin() as conn:
        await store.inbox.insert_events(conn, [NewInboundEvent.from_message(message("wamid.lag"), utcnow())])
        oid = await store.outbox.enqueue(conn, PNID, text_out("late", "346201"), contact_key="346201",
                                         business_initiated=False, due_at=utcnow() - timedelta(seconds=30))
    async with store.read() as conn:
        lag = await scrape_counts(conn)
    assert lag.oldest_open_event_at is not None and lag.oldest_open_event_at <= utcnow()
    assert lag.oldest_due_at is not None and utcnow() - lag.oldest_due_at >= timedelta(seconds=29)
    async with store.begin() as conn:  # claimed: no longer waiting for anyone
        assert [r.record.id for r in await store.outbox.claim_due(conn, "d", limit=5, lease=LEASE)] == [oid]
    async with store.read() as conn:
        assert (await scrape_counts(conn)).oldest_due_at is None
