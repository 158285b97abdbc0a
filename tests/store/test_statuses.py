"""Status tracking: monotonic under any arrival order, held statuses, callback matching, failures."""

from __future__ import annotations

import itertools

import pytest

from waflow.canonical import DeliveryStatus as S
from waflow.store import StatusOutcome, Store, build_callback_data, parse_callback_data

from .helpers import PNID, at, status, text_out

# provider times: sent at 1 s, delivered at 2 s, read at 3 s, failed at 4 s
TIMES = {S.SENT: 1, S.DELIVERED: 2, S.READ: 3, S.FAILED: 4, S.PLAYED: 5}
POSITIVE = [S.SENT, S.DELIVERED, S.READ]


def expected(order: tuple[S, ...]) -> S:
    """The documented rule, as a model: failed wins unless delivery was seen first."""
    seen: list[S] = []
    for s in order:
        if s == S.FAILED:
            if not any(x in (S.DELIVERED, S.READ, S.PLAYED) for x in seen):
                return S.FAILED
            continue
        seen.append(s)
    return max(seen, key=lambda s: s.rank, default=S.ACCEPTED)


async def enqueue(store: Store, wamid: str | None = None) -> int:
    async with store.begin() as conn:
        oid = await store.outbox.enqueue(conn, PNID, text_out(), contact_key="346", business_initiated=False)
        if wamid:
            await store.outbox.record_accepted(conn, oid, wamid, at(0))
    return oid


@pytest.mark.parametrize("batch", [False, True], ids=["one-by-one", "one-batch"])
async def test_every_arrival_order_is_monotonic(store: Store, batch: bool) -> None:
    statuses = [S.SENT, S.DELIVERED, S.READ, S.FAILED]
    orders = [
        order
        for n in range(1, 5)
        for combo in itertools.combinations(statuses, n)
        for order in itertools.permutations(combo)
    ]
    for number, order in enumerate(orders):
        wamid = f"wamid.p{number}"
        oid = await enqueue(store, wamid)
        updates = [status(wamid, s, TIMES[s], error=131047 if s == S.FAILED else None) for s in order]
        seen: list[S] = []
        if batch:
            async with store.begin() as conn:
                results = await store.statuses.apply_many(conn, updates)
            seen = [r.status for r in results if r.status]
        else:
            for u in updates:
                async with store.begin() as conn:
                    result = await store.statuses.apply(conn, u)
                assert result.outbound_id == oid
                assert result.status is not None
                seen.append(result.status)
        # never regresses: positive ranks only grow, and nothing leaves failed
        for before, after in itertools.pairwise(seen):
            if before == S.FAILED:
                assert after == S.FAILED, order
            elif after != S.FAILED:
                assert after.rank >= before.rank, order
        async with store.read() as conn:
            message = await store.outbox.get(conn, oid)
            history = await store.statuses.history(conn, oid)
        assert message is not None
        assert message.status == expected(order), order
        assert [h.status for h in history] == [s.value for s in order]
        assert all(h.applied for h in history)
        if message.status == S.FAILED:
            assert message.error_code == 131047 and message.error_text and "Re-engagement" in message.error_text
            assert message.delivered_at is None and message.read_at is None
            assert message.failed_at == at(TIMES[S.FAILED])
        else:
            reached = [s for s in POSITIVE if s.rank <= message.status.rank]
            # earliest time of each status or of a later one implying it
            for s in reached:
                implied = [TIMES[x] for x in order if x != S.FAILED and x.rank >= s.rank]
                assert getattr(message, f"{s.value}_at") == at(min(implied)), (order, s)
            assert message.error_code is None


async def test_read_implies_delivered_and_late_delivered_refines_time(store: Store) -> None:
    oid = await enqueue(store, "wamid.r")
    async with store.begin() as conn:
        r1 = await store.statuses.apply(conn, status("wamid.r", "read", 30))
        m = await store.outbox.get(conn, oid)
        assert m is not None and m.delivered_at == at(30) and m.sent_at == at(30) and m.read_at == at(30)
        r2 = await store.statuses.apply(conn, status("wamid.r", "delivered", 20))
        played = await store.statuses.apply(conn, status("wamid.r", "played", 40))
        m = await store.outbox.get(conn, oid)
    assert r1.outcome == StatusOutcome.ADVANCED and r1.previous == S.ACCEPTED
    assert r2.outcome == StatusOutcome.RECORDED and r2.status == S.READ
    assert played.outcome == StatusOutcome.ADVANCED
    assert m is not None and m.status == S.PLAYED and m.delivered_at == at(20) and m.played_at == at(40)


async def test_held_statuses_applied_on_record_accepted(store: Store) -> None:
    oid = await enqueue(store)
    async with store.begin() as conn:
        held = await store.statuses.apply_many(conn, [status("wamid.h", "delivered", 2), status("wamid.h", "sent", 1)])
    assert [h.outcome for h in held] == [StatusOutcome.HELD, StatusOutcome.HELD]
    assert all(h.outbound_id is None for h in held)
    async with store.read() as conn:
        assert len(await store.statuses.held(conn)) == 2
        m = await store.outbox.get(conn, oid)
        assert m is not None and m.status == S.QUEUED
    async with store.begin() as conn:
        adopted = await store.outbox.record_accepted(conn, oid, "wamid.h", at(0))
    assert [a.outcome for a in adopted] == [StatusOutcome.ADVANCED, StatusOutcome.RECORDED]
    async with store.read() as conn:
        m = await store.outbox.get(conn, oid)
        assert await store.statuses.held(conn) == []
        history = await store.statuses.history(conn, oid)
    assert m is not None and m.status == S.DELIVERED and m.provider_message_id == "wamid.h"
    assert m.sent_at == at(1) and m.delivered_at == at(2) and m.accepted_at == at(0)
    assert [h.status for h in history] == ["delivered", "sent"] and all(h.applied for h in history)


async def test_held_failed_keeps_error_when_adopted(store: Store) -> None:
    oid = await enqueue(store)
    async with store.begin() as conn:
        await store.statuses.apply(conn, status("wamid.f", "failed", 5, error=131047))
    async with store.begin() as conn:
        await store.outbox.record_accepted(conn, oid, "wamid.f", at(0))
        m = await store.outbox.get(conn, oid)
    assert m is not None and m.status == S.FAILED and m.error_code == 131047
    assert m.error_text == "Re-engagement message: more than 24 hours"


async def test_callback_data_matches_when_wamid_unknown(store: Store) -> None:
    oid = await enqueue(store)
    assert parse_callback_data(build_callback_data(oid)) == oid
    assert parse_callback_data("order-42") is None and parse_callback_data("wf:x") is None
    async with store.begin() as conn:
        await store.statuses.apply(conn, status("wamid.c", "delivered", 9))  # held, no callback
    async with store.begin() as conn:
        result = await store.statuses.apply(conn, status("wamid.c", "sent", 8, callback=build_callback_data(oid)))
        m = await store.outbox.get(conn, oid)
        held = await store.statuses.held(conn)
    assert result.outbound_id == oid
    assert m is not None and m.provider_message_id == "wamid.c" and m.status == S.DELIVERED  # held one adopted
    assert held == []
    # a second row cannot steal a wamid via a wrong callback
    other = await enqueue(store)
    async with store.begin() as conn:
        r = await store.statuses.apply(conn, status("wamid.c", "read", 10, callback=build_callback_data(other)))
        assert r.outbound_id == oid and r.status == S.READ


async def test_adopt_held_sweep(store: Store) -> None:
    oid = await enqueue(store)
    async with store.begin() as conn:
        await store.statuses.apply(conn, status("wamid.s", "read", 3))
        # the wamid gets recorded by something that does not adopt (simulates a race / older code)
        from sqlalchemy import update

        from waflow.store.tables import outbound_messages

        await conn.execute(
            update(outbound_messages)
            .where(outbound_messages.c.id == oid)
            .values(provider_message_id="wamid.s", status="accepted")
        )
    async with store.begin() as conn:
        results = await store.statuses.adopt_held(conn)
        m = await store.outbox.get(conn, oid)
    assert [r.outcome for r in results] == [StatusOutcome.ADVANCED]
    assert m is not None and m.status == S.READ


async def test_record_failed_and_record_accepted_rules(store: Store) -> None:
    oid = await enqueue(store)
    async with store.begin() as conn:
        assert await store.outbox.record_failed(conn, oid, 131026, "invalid_recipient", "Message undeliverable")
        m = await store.outbox.get(conn, oid)
    assert m is not None and m.status == S.FAILED and m.error_code == 131026
    assert m.error_class == "invalid_recipient" and m.error_text == "Message undeliverable"

    delivered = await enqueue(store, "wamid.d")
    async with store.begin() as conn:
        await store.statuses.apply(conn, status("wamid.d", "delivered", 2))
        assert not await store.outbox.record_failed(conn, delivered, 131000, "retryable", "late")
        with pytest.raises(ValueError):
            await store.outbox.record_accepted(conn, delivered, "wamid.other")
        with pytest.raises(LookupError):
            await store.outbox.record_accepted(conn, 987_654, "wamid.none")
        m = await store.outbox.get(conn, delivered)
    assert m is not None and m.status == S.DELIVERED and m.error_code is None


async def test_status_racing_record_accepted_is_never_left_held(store_url: str) -> None:
    import asyncio

    stores = [Store.open(store_url) for _ in range(2)]
    await stores[0].upgrade()
    try:
        ids = [await enqueue(stores[0]) for _ in range(30)]

        async def accept(oid: int) -> None:
            async with stores[0].begin() as conn:
                await stores[0].outbox.record_accepted(conn, oid, f"wamid.race{oid}", at(0))

        async def deliver(oid: int) -> None:
            async with stores[1].begin() as conn:
                await stores[1].statuses.apply(conn, status(f"wamid.race{oid}", "delivered", 2))

        await asyncio.gather(*(f(oid) for oid in ids for f in (accept, deliver)))
        async with stores[0].read() as conn:
            assert await stores[0].statuses.held(conn) == []
            for oid in ids:
                m = await stores[0].outbox.get(conn, oid)
                assert m is not None and m.status == S.DELIVERED, oid
    finally:
        for s in stores:
            await s.close()
