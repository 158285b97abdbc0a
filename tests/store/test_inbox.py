"""Inbox: bulk deduplicated inserts, order, claiming, failure accounting, atomicity."""

from __future__ import annotations

import asyncio
from datetime import UTC

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from waflow.canonical import EventKind
from waflow.store import NewInboundEvent, Store
from waflow.store.tables import inbound_events

from .helpers import PNID, at, message, status


def events(keys: list[str]) -> list[NewInboundEvent]:
    return [NewInboundEvent.from_message(message(k, wa_id=f"3460{i % 7}"), at(i)) for i, k in enumerate(keys)]


async def count(store: Store) -> int:
    async with store.read() as conn:
        return int((await conn.execute(select(func.count()).select_from(inbound_events))).scalar_one())


async def test_insert_returns_ids_in_order_and_none_for_duplicates(store: Store) -> None:
    async with store.begin() as conn:
        first = await store.inbox.insert_events(conn, events(["a", "b", "a", "c"]))
    assert first[2] is None
    ids = [first[0], first[1], first[3]]
    assert all(isinstance(i, int) for i in ids)
    assert ids == sorted(ids)  # id order = arrival order
    async with store.begin() as conn:
        again = await store.inbox.insert_events(conn, events(["c", "d", "b"]))
    assert again[0] is None and again[2] is None and isinstance(again[1], int)
    assert await count(store) == 4
    assert await store.inbox.insert_events(conn=None, rows=[]) == []  # type: ignore[arg-type]


async def test_payload_roundtrip_keeps_unicode_and_utc(store: Store) -> None:
    m = message("wamid.X", text="¿tenéis stock? 😮")
    async with store.begin() as conn:
        [event_id] = await store.inbox.insert_events(conn, [NewInboundEvent.from_message(m, at(5))])
    assert event_id is not None
    async with store.read() as conn:
        record = await store.inbox.get(conn, event_id)
    assert record is not None
    assert record.payload["text"] == "¿tenéis stock? 😮"
    assert record.dedup_key == "msg:wamid.X" and record.kind == "message" and record.contact_key == m.contact.key
    assert record.received_at == at(5) and record.received_at.tzinfo is not None
    assert record.received_at.utcoffset() == UTC.utcoffset(None)


async def test_dedup_keys_for_each_kind(store: Store) -> None:
    rows = [
        NewInboundEvent.from_status(status("wamid.S", "delivered"), at(0)),
        NewInboundEvent.from_status(status("wamid.S", "read"), at(0)),
        NewInboundEvent.from_status(status("wamid.S", "read"), at(1)),
        NewInboundEvent.other(EventKind.OTHER, {"field": "account_update", "v": 1}, at(0)),
        NewInboundEvent.other("other", {"v": 1, "field": "account_update"}, at(2)),  # same content
    ]
    async with store.begin() as conn:
        ids = await store.inbox.insert_events(conn, rows)
    assert [i is not None for i in ids] == [True, True, False, True, False]
    assert rows[0].dedup_key == "st:wamid.S:delivered"


async def test_dedup_under_concurrency(store_url: str) -> None:
    stores = [Store.open(store_url) for _ in range(2)]
    await stores[0].upgrade()
    keys = [f"k{i}" for i in range(600)]
    try:

        async def writer(s: Store, offset: int) -> list[int]:
            got: list[int] = []
            mine = keys[offset:] + keys[:offset]
            for start in range(0, len(mine), 100):
                async with s.begin() as conn:
                    got += [i for i in await s.inbox.insert_events(conn, events(mine[start : start + 100])) if i]
            return got

        results = await asyncio.gather(writer(stores[0], 0), writer(stores[1], 300), writer(stores[0], 150))
        all_ids = [i for r in results for i in r]
        assert len(all_ids) == len(set(all_ids)) == len(keys)
        assert await count(stores[0]) == len(keys)
    finally:
        for s in stores:
            await s.close()


async def test_claim_mark_done_and_contact_order(store: Store) -> None:
    rows = events([f"m{i}" for i in range(10)])
    statuses = [NewInboundEvent.from_status(status(f"w{i}", "sent"), at(i)) for i in range(3)]
    async with store.begin() as conn:
        await store.inbox.insert_events(conn, rows + statuses)
    async with store.begin() as conn:
        claimed = await store.inbox.claim_pending(conn, EventKind.STATUS, limit=2)
        assert [c.provider_message_id for c in claimed] == ["w0", "w1"]
        await store.inbox.mark_done(conn, [c.id for c in claimed])
    async with store.begin() as conn:
        left = await store.inbox.claim_pending(conn, "status")
        assert [c.provider_message_id for c in left] == ["w2"]
        contact = rows[3].contact_key
        assert contact is not None
        mine = await store.inbox.pending_for_contact(conn, PNID, contact, lock=True)
        assert [m.id for m in mine] == sorted(m.id for m in mine)
        assert {m.contact_key for m in mine} == {contact} and len(mine) >= 1
        counts = await store.inbox.counts(conn)
    assert counts == {"done": 2, "pending": 11}


async def test_mark_failed_until_dead(store: Store) -> None:
    async with store.begin() as conn:
        [event_id] = await store.inbox.insert_events(conn, events(["x"]))
    assert event_id is not None
    states = []
    for _ in range(3):
        async with store.begin() as conn:
            states.append(await store.inbox.mark_failed(conn, event_id, "boom", max_attempts=3))
    assert states == ["failed", "failed", "dead"]
    async with store.begin() as conn:
        record = await store.inbox.get(conn, event_id)
        assert record is not None and record.attempts == 3 and record.error == "boom"
        assert await store.inbox.claim_pending(conn) == []
        assert await store.inbox.mark_failed(conn, 999_999, "nope") is None


async def test_failed_transaction_leaves_earlier_rows_intact(store: Store) -> None:
    async with store.begin() as conn:
        await store.inbox.insert_events(conn, events(["keep1", "keep2"]))
    bad = NewInboundEvent("bad", "not-a-kind", PNID, {}, at(0))
    with pytest.raises(IntegrityError):
        async with store.begin() as conn:
            await store.inbox.insert_events(conn, events(["lost1"]))
            await store.inbox.insert_events(conn, [bad])
    assert await count(store) == 2
    async with store.begin() as conn:  # the store is still usable, and lost1 can be written now
        assert (await store.inbox.insert_events(conn, events(["lost1", "keep1"])))[1] is None
    assert await count(store) == 3
