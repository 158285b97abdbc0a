"""One person, one contact: ids arriving in any order and combination (`waflow.store.contacts`' rule)."""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable
from datetime import timedelta

import pytest
from sqlalchemy import select

from waflow.canonical import ContactRef
from waflow.store import NewInboundEvent, Store
from waflow.store.contacts import MERGED, ContactRecord
from waflow.store.tables import contacts, outbound_messages

from .helpers import PNID, at, message, text_out

W, U = "34600111222", "US.13491208655302741918"
W2, U2 = "34600999888", "US.99999999999999999999"

# the three ways one person can show up
ONLY_WA = ContactRef(wa_id=W, profile_name="Ana")
ONLY_USER = ContactRef(user_id=U, profile_name="Ana")
BOTH = ContactRef(wa_id=W, user_id=U, profile_name="Ana M.")

Upsert = Callable[[Store, list[tuple[ContactRef, int]]], Awaitable[None]]


async def one_by_one(store: Store, seen: list[tuple[ContactRef, int]]) -> None:
    """Each message in its own transaction, through the per-contact path."""
    for ref, seconds in seen:
        async with store.begin() as conn:
            await store.contacts.upsert_from_inbound(conn, PNID, ref, at(seconds))


async def batches_of_one(store: Store, seen: list[tuple[ContactRef, int]]) -> None:
    """Each message in its own webhook batch (the writer's path)."""
    for ref, seconds in seen:
        async with store.begin() as conn:
            await store.contacts.upsert_many(conn, [(PNID, ref, at(seconds))])


async def one_batch(store: Store, seen: list[tuple[ContactRef, int]]) -> None:
    """All of them in one webhook batch."""
    async with store.begin() as conn:
        await store.contacts.upsert_many(conn, [(PNID, ref, at(seconds)) for ref, seconds in seen])


PATHS: dict[str, Upsert] = {"one_by_one": one_by_one, "batches_of_one": batches_of_one, "one_batch": one_batch}


async def people(store: Store) -> list[ContactRecord]:
    """The contacts that are not aliases."""
    async with store.read() as conn:
        rows = await conn.execute(select(contacts.c.id).where(contacts.c.merged_into.is_(None)).order_by(contacts.c.id))
        ids = [r.id for r in rows]
        found = [await store.contacts.get_by_id(conn, i) for i in ids]
    return [c for c in found if c is not None]


@pytest.mark.parametrize("path", list(PATHS))
@pytest.mark.parametrize("order", list(itertools.permutations(range(3))))
async def test_every_order_ends_as_one_contact(store: Store, path: str, order: tuple[int, ...]) -> None:
    refs = [ONLY_WA, ONLY_USER, BOTH]
    # the message times follow the arrival order, so the window is the last one's
    seen = [(refs[i], n * 60) for n, i in enumerate(order)]
    await PATHS[path](store, seen)
    [person] = await people(store)
    assert (person.wa_id, person.user_id) == (W, U)
    assert person.last_inbound_at == at(120)
    async with store.read() as conn:
        for key in (W, U, person.contact_key):
            found = await store.contacts.get(conn, PNID, key)
            assert found is not None and found.id == person.id, key
        assert set((await store.contacts.find_many(conn, PNID, [W, U])).values()) == {person}


@pytest.mark.parametrize("path", list(PATHS))
async def test_first_seen_by_number_then_by_user_id_only_is_linked_later(store: Store, path: str) -> None:
    await PATHS[path](store, [(ONLY_WA, 0), (ONLY_USER, 60)])
    first, second = await people(store)  # nothing links them yet: two rows
    assert (first.wa_id, first.user_id, second.wa_id, second.user_id) == (W, None, None, U)
    await PATHS[path](store, [(BOTH, 120)])
    [person] = await people(store)
    assert person.id == first.id, "the row created first survives"
    assert person.contact_key == W
    async with store.read() as conn:
        alias = (await conn.execute(select(contacts.c.merged_into).where(contacts.c.id == second.id))).scalar_one()
    assert alias == first.id


async def test_a_merge_moves_window_opt_out_sessions_and_history(store: Store) -> None:
    await one_by_one(store, [(ONLY_WA, 0), (ONLY_USER, 600)])
    by_wa, by_user = await people(store)
    async with store.begin() as conn:
        await store.consent.set(conn, by_user, opted_out=True, source="api")
        kept = await store.sessions.create(conn, by_wa.id, "shop", "1")
        merged = await store.sessions.create(conn, by_user.id, "shop", "1")
        await store.inbox.insert_events(
            conn, [NewInboundEvent.from_message(message("wamid.u1", wa_id=U), at(600))]
        )
        queued = await store.outbox.enqueue(
            conn, PNID, text_out("to the BSUID", to=U), contact_key=U, business_initiated=False
        )
    async with store.begin() as conn:
        person = await store.contacts.upsert_from_inbound(conn, PNID, BOTH, at(60))
    assert person.id == by_wa.id
    assert person.last_inbound_at == at(600), "the later window of the two"
    assert person.opted_out, "opted out under one id: opted out"
    assert person.opted_out_at is not None
    async with store.read() as conn:
        history = await store.consent.history(conn, person.id)
    assert [e.action for e in history] == ["opt_out"], "the alias's consent history is the survivor's"
    async with store.read() as conn:
        assert (await store.sessions.get(conn, kept.id)).state != "ended"  # type: ignore[union-attr]
        ended = await store.sessions.get(conn, merged.id)
        assert ended is not None and ended.state == "ended" and ended.end_reason == MERGED
        assert ended.contact_id == person.id
        events = await store.inbox.pending_for_contact(conn, PNID, person.contact_key, limit=10)
        assert [e.provider_message_id for e in events] == ["wamid.u1"]
        message_row = await store.outbox.get(conn, queued)
        assert message_row is not None and message_row.contact_key == person.contact_key


async def test_one_active_session_moves_to_the_survivor(store: Store) -> None:
    await one_by_one(store, [(ONLY_WA, 0), (ONLY_USER, 60)])
    by_wa, by_user = await people(store)
    async with store.begin() as conn:
        session = await store.sessions.create(conn, by_user.id, "shop", "1")
        await store.contacts.upsert_many(conn, [(PNID, BOTH, at(120))])
    async with store.read() as conn:
        moved = await store.sessions.active_for_contact(conn, by_wa.id)
    assert moved is not None and moved.id == session.id


@pytest.mark.parametrize("path", list(PATHS))
async def test_a_user_id_held_by_another_row_takes_its_new_number(store: Store, path: str) -> None:
    """The person (BSUID U) changed phone number from W2 to W: one contact, now at W."""
    await PATHS[path](store, [(ContactRef(wa_id=W2, user_id=U), 0)])
    await PATHS[path](store, [(BOTH, 60)])
    [person] = await people(store)
    assert (person.contact_key, person.wa_id, person.user_id) == (W2, W, U)
    async with store.read() as conn:
        found = await store.contacts.get(conn, PNID, W)
    assert found is not None and found.id == person.id


@pytest.mark.parametrize("path", list(PATHS))
async def test_a_number_that_changed_hands_moves_to_its_new_person(store: Store, path: str) -> None:
    """W belonged to the person with BSUID U2; now a person with BSUID U writes from it."""
    await PATHS[path](store, [(ContactRef(wa_id=W, user_id=U2), 0)])
    await PATHS[path](store, [(BOTH, 60)])
    old, new = await people(store)
    assert (old.contact_key, old.wa_id, old.user_id) == (W, None, U2)
    assert (new.contact_key, new.wa_id, new.user_id) == (U, W, U)
    async with store.read() as conn:
        assert (await store.contacts.get(conn, PNID, U2)) == old
        found = await store.contacts.get(conn, PNID, U)
    assert found is not None and found.id == new.id


async def test_the_batch_path_refreshes_many_contacts_and_never_moves_back(store: Store) -> None:
    senders = [ContactRef(wa_id=f"3461{n:07d}", profile_name=f"p{n}") for n in range(300)]
    async with store.begin() as conn:
        created = await store.contacts.upsert_many(conn, [(PNID, ref, at(100)) for ref in senders])
    assert len(created) == 300
    renamed = [ContactRef(wa_id=ref.wa_id, profile_name="new") for ref in senders]
    async with store.begin() as conn:
        # half write again later, half arrive late with an older timestamp
        refreshed = await store.contacts.upsert_many(
            conn, [(PNID, ref, at(200 if n % 2 else 50)) for n, ref in enumerate(renamed)]
        )
    async with store.read() as conn:
        stored = await store.contacts.find_many(conn, PNID, [ref.key for ref in senders])
    for n, ref in enumerate(senders):
        row = stored[ref.key]
        assert row == refreshed[(PNID, ref.key)]
        assert row.profile_name == "new"
        assert row.last_inbound_at == at(200 if n % 2 else 100)
        assert row.id == created[(PNID, ref.key)].id


async def test_window_follows_the_person_after_a_merge(store: Store) -> None:
    await one_by_one(store, [(ONLY_USER, 0)])
    async with store.begin() as conn:
        await store.contacts.upsert_from_inbound(conn, PNID, ONLY_WA, at(0) + timedelta(hours=23))
        await store.contacts.upsert_from_inbound(conn, PNID, BOTH, at(10))
        assert await store.contacts.window_open(conn, PNID, U, now=at(0) + timedelta(hours=30))
        assert not await store.contacts.window_open(conn, PNID, U, now=at(0) + timedelta(hours=48))


async def test_a_send_to_either_id_joins_the_persons_one_queue(store: Store) -> None:
    """A person first seen by user_id (filed under it) and later by number: an API send or a campaign to
    the number is queued under the contact's key, behind the flow's replies, not in a queue of its own."""
    from waflow.outbox.campaigns import enqueue_campaign, enqueue_message

    await one_by_one(store, [(ONLY_USER, 0), (BOTH, 60)])
    [person] = await people(store)
    assert person.contact_key == U
    async with store.begin() as conn:
        by_number = await enqueue_message(store, PNID, text_out("hi", to=W), business_initiated=False, conn=conn)
        by_stranger = await enqueue_message(store, PNID, text_out("hi", to=W2), business_initiated=False, conn=conn)
    campaign = await enqueue_campaign(
        store, name="promo", phone_number_id=PNID, template="promo", language="en_US", contacts=[{"wa_id": W}]
    )
    async with store.read() as conn:
        assert (await store.outbox.get(conn, by_number)).contact_key == U  # type: ignore[union-attr]
        assert (await store.outbox.get(conn, by_stranger)).contact_key == W2  # type: ignore[union-attr]
        o = outbound_messages
        rows = await conn.execute(select(o.c.contact_key).where(o.c.campaign_id == campaign))
        assert [r.contact_key for r in rows] == [U]
