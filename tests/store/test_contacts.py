"""Contacts: upsert from inbound messages, id linking, the 24 h window; dead letters."""

from __future__ import annotations

from datetime import timedelta

from waflow.canonical import ContactRef
from waflow.store import Store, window_open_at

from .helpers import PNID, T0, at


async def test_upsert_creates_then_refreshes_and_never_moves_back(store: Store) -> None:
    async with store.begin() as conn:
        c1 = await store.contacts.upsert_from_inbound(conn, PNID, ContactRef(wa_id="346", profile_name="Ana"), at(100))
    assert c1.contact_key == "346" and c1.last_inbound_at == at(100) and c1.profile_name == "Ana"
    async with store.begin() as conn:
        c2 = await store.contacts.upsert_from_inbound(conn, PNID, ContactRef(wa_id="346", profile_name="Ana R"), at(50))
    assert c2.id == c1.id and c2.profile_name == "Ana R" and c2.last_inbound_at == at(100)  # not backwards
    async with store.begin() as conn:
        c3 = await store.contacts.upsert_from_inbound(conn, PNID, ContactRef(wa_id="346"), at(200))
        other_number = await store.contacts.upsert_from_inbound(conn, "999", ContactRef(wa_id="346"), at(1))
    assert c3.id == c1.id and c3.profile_name == "Ana R" and c3.last_inbound_at == at(200)
    assert other_number.id != c1.id


async def test_links_wa_id_and_user_id(store: Store) -> None:
    async with store.begin() as conn:
        by_user = await store.contacts.upsert_from_inbound(conn, PNID, ContactRef(user_id="US.abc"), at(0))
        linked = await store.contacts.upsert_from_inbound(conn, PNID, ContactRef(wa_id="346", user_id="US.abc"), at(1))
        again = await store.contacts.upsert_from_inbound(conn, PNID, ContactRef(wa_id="346"), at(2))
        found = await store.contacts.get(conn, PNID, "346")
    assert by_user.contact_key == "US.abc"
    assert linked.id == by_user.id and linked.wa_id == "346" and linked.user_id == "US.abc"
    assert linked.contact_key == "US.abc"  # the key other rows refer to stays
    assert again.id == by_user.id and again.last_inbound_at == at(2)
    assert found is not None and found.id == by_user.id

    async with store.begin() as conn:
        by_wa = await store.contacts.upsert_from_inbound(conn, PNID, ContactRef(wa_id="347"), at(0))
        both = await store.contacts.upsert_from_inbound(conn, PNID, ContactRef(wa_id="347", user_id="US.def"), at(1))
    assert both.id == by_wa.id and both.user_id == "US.def" and both.contact_key == "347"


async def test_window(store: Store) -> None:
    async with store.begin() as conn:
        await store.contacts.upsert_from_inbound(conn, PNID, ContactRef(wa_id="346"), T0)
    async with store.read() as conn:
        assert await store.contacts.window_open(conn, PNID, "346", T0 + timedelta(hours=23, minutes=59))
        assert not await store.contacts.window_open(conn, PNID, "346", T0 + timedelta(hours=24))
        assert not await store.contacts.window_open(conn, PNID, "nobody", T0)
    assert window_open_at(T0, T0) and not window_open_at(None, T0)


async def test_dead_letters(store: Store) -> None:
    body = b'{"object": "whatsapp_business_account", "entry": [\xff'
    async with store.begin() as conn:
        dl_id = await store.dead_letters.add(conn, reason="bad JSON", body=body, headers={"content-type": "x"})
    async with store.read() as conn:
        record = await store.dead_letters.get(conn, dl_id)
        assert await store.dead_letters.count(conn) == 1
    assert record is not None and record.body == body and record.headers == {"content-type": "x"}
    assert record.received_at.tzinfo is not None
