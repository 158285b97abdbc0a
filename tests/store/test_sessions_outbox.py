"""Sessions (one active per contact), timers, and the outbox basics."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.exc import IntegrityError

from waflow.canonical import ContactRef, OutboundMessage
from waflow.store import SessionConflict, Store

from .helpers import PNID, T0, at, text_out


async def contact_id(store: Store, wa_id: str = "346") -> int:
    async with store.begin() as conn:
        return (await store.contacts.upsert_from_inbound(conn, PNID, ContactRef(wa_id=wa_id), T0)).id


async def test_one_active_session_per_contact(store: Store) -> None:
    cid = await contact_id(store)
    async with store.begin() as conn:
        first = await store.sessions.create(conn, cid, "welcome", "1", current_node="start")
        with pytest.raises(SessionConflict):
            await store.sessions.create(conn, cid, "other", "1")
        # the transaction survives the conflict
        again = await store.sessions.active_for_contact(conn, cid, lock=True)
        assert again is not None and again.id == first.id
    async with store.begin() as conn:
        updated = await store.sessions.update(
            conn, first.id, state="waiting", waiting_for="text", vars={"name": "Ana"}, steps=2
        )
        assert updated is not None and updated.step_count == 2 and updated.vars == {"name": "Ana"}
        ended = await store.sessions.end(conn, first.id, "done")
        assert ended is not None and ended.state == "ended" and ended.waiting_for is None
        assert await store.sessions.end(conn, first.id, "again") is None
        assert await store.sessions.update(conn, first.id, current_node="x") is None
        second = await store.sessions.create(conn, cid, "welcome", "2")
        assert await store.sessions.active_for_contact(conn, cid) == second


async def test_session_needs_a_contact(store: Store) -> None:
    with pytest.raises((SessionConflict, IntegrityError)):
        async with store.begin() as conn:
            await store.sessions.create(conn, 424242, "welcome", "1")


async def test_concurrent_session_creation_allows_one(store_url: str) -> None:
    import asyncio

    stores = [Store.open(store_url) for _ in range(2)]
    await stores[0].upgrade()
    try:
        cid = await contact_id(stores[0])

        async def start(s: Store) -> bool:
            try:
                async with s.begin() as conn:
                    await s.sessions.create(conn, cid, "welcome", "1")
                return True
            except SessionConflict:
                return False

        assert sorted(await asyncio.gather(*(start(s) for s in stores))) == [False, True]
    finally:
        for s in stores:
            await s.close()


async def test_timers(store: Store) -> None:
    cid = await contact_id(store)
    async with store.begin() as conn:
        session = await store.sessions.create(conn, cid, "welcome", "1")
        t1 = await store.timers.schedule(
            conn, phone_number_id=PNID, contact_key="346", kind="timeout", fire_at=at(60), session_id=session.id
        )
        t2 = await store.timers.schedule(conn, phone_number_id=PNID, contact_key="346", kind="remind", fire_at=at(30))
        t3 = await store.timers.schedule(conn, phone_number_id=PNID, contact_key="346", kind="x", fire_at=at(3600))
    async with store.begin() as conn:
        due = await store.timers.due(conn, at(120))
        assert [t.id for t in due] == [t2, t1]
        assert await store.timers.cancel(conn, t3)
        assert not await store.timers.cancel(conn, t3)
        assert await store.timers.mark_fired(conn, [t2]) == 1
        assert await store.timers.cancel_for_session(conn, session.id) == 1
        assert await store.timers.due(conn, at(10_000)) == []
        timer = await store.timers.get(conn, t2)
        assert timer is not None and timer.state == "fired" and timer.fired_at is not None


async def test_outbox_enqueue_attempts_history(store: Store) -> None:
    async with store.begin() as conn:
        oid = await store.outbox.enqueue(
            conn,
            PNID,
            OutboundMessage(to="346", type="text", content={"body": "¿hola?"}, reply_to="wamid.in"),
            contact_key="346",
            business_initiated=True,
            fallback_template={"name": "hello", "language": {"code": "es"}},
            node_id="ask",
            due_at=T0 + timedelta(seconds=5),
        )
        n1 = await store.outbox.record_attempt(
            conn, oid, "error", started_at=at(5), finished_at=at(6), http_status=503, detail="busy"
        )
        n2 = await store.outbox.record_attempt(conn, oid, "accepted", started_at=at(10), http_status=200)
        await store.outbox.record_accepted(conn, oid, "wamid.out", at(10))
        with pytest.raises(LookupError):
            await store.outbox.record_attempt(conn, 999_999, "error", started_at=at(0))
    assert (n1, n2) == (1, 2)
    async with store.read() as conn:
        history = await store.outbox.history(conn, oid)
        by_id = await store.outbox.by_provider_id(conn, "wamid.out")
        assert await store.outbox.history(conn, 999_999) is None
    assert history is not None and by_id is not None and by_id.id == oid
    m = history.message
    assert m.status == "accepted" and m.attempts == 2 and m.due_at == at(5) and m.business_initiated
    assert m.to_message() == OutboundMessage(to="346", type="text", content={"body": "¿hola?"}, reply_to="wamid.in")
    assert m.fallback_template == {"name": "hello", "language": {"code": "es"}}
    assert [a.outcome for a in history.attempts] == ["error", "accepted"]
    assert history.attempts[0].http_status == 503


async def test_outbox_refuses_unaddressed_and_duplicate_wamid(store: Store) -> None:
    async with store.begin() as conn:
        with pytest.raises(ValueError):
            await store.outbox.enqueue(
                conn, PNID, OutboundMessage(type="text", content={}), contact_key="x", business_initiated=False
            )
        a = await store.outbox.enqueue(conn, PNID, text_out("a"), contact_key="346", business_initiated=False)
        b = await store.outbox.enqueue(conn, PNID, text_out("b"), contact_key="346", business_initiated=False)
        await store.outbox.record_accepted(conn, a, "wamid.same")
    with pytest.raises(IntegrityError):
        async with store.begin() as conn:
            await store.outbox.record_accepted(conn, b, "wamid.same")
    async with store.read() as conn:
        assert await store.outbox.queued_count(conn, PNID) == 1  # b: still queued, nothing lost
