"""The webhook endpoint with the emulator as the sender, over a real localhost socket, on both backends."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from waflow.canonical import ContactRef, DeliveryStatus, InboundMessage, OutboundMessage
from waflow.emulator import EmulatorConfig, EmulatorHandle, inbound, run_emulator
from waflow.store import Store

from .helpers import PNID, SECRET, TOKEN, WABA, config, contact_rows, inbox_rows, post, serve


@pytest.fixture
async def setup(store: Store) -> AsyncIterator[tuple[Store, str, EmulatorHandle]]:
    async with serve(store) as url:
        cfg = EmulatorConfig(callback_url=url, app_secret=SECRET, verify_token=TOKEN, phone_number_id=PNID,
                             waba_id=WABA)
        async with run_emulator(cfg) as emu:
            yield store, url, emu


def messages(rows: list[dict[str, Any]]) -> dict[str, InboundMessage]:
    return {r["provider_message_id"]: InboundMessage.model_validate(r["payload"])
            for r in rows if r["kind"] == "message"}


async def test_handshake(setup: tuple[Store, str, EmulatorHandle]) -> None:
    _, url, emu = setup
    assert await emu.verify_callback()
    async with httpx.AsyncClient() as c:
        params = {"hub.mode": "subscribe", "hub.verify_token": TOKEN, "hub.challenge": "1158201444"}
        ok = await c.get(url, params=params)
        assert (ok.status_code, ok.text, ok.headers["content-type"].split(";")[0]) == (200, "1158201444", "text/plain")
        bad = await c.get(url, params={"hub.mode": "subscribe", "hub.verify_token": "nope", "hub.challenge": "1"})
        assert bad.status_code == 403 and "1" not in bad.text
        mode = await c.get(url, params={"hub.mode": "unsubscribe", "hub.verify_token": TOKEN, "hub.challenge": "1"})
        assert mode.status_code == 403


async def test_every_inbound_type_is_stored(setup: tuple[Store, str, EmulatorHandle]) -> None:
    store, _, emu = setup
    ana = emu.user("34600111222", name="Ana")
    ids = {
        "text": await ana.send_text("Hola, ¿tenéis stock? 😮", referral=inbound.referral()),
        "image": await ana.send_image(b"\x89PNG fake", caption="foto"),
        "video": await ana.send_video(b"vid"),
        "audio": await ana.send_audio(b"ogg", voice=True),
        "document": await ana.send_document(b"%PDF", filename="a.pdf"),
        "sticker": await ana.send_sticker(b"webp"),
        "location": await ana.send_location(40.4168, -3.7038, name="Sol", address="Madrid"),
        "contacts": await ana.send_contacts([{"name": {"formatted_name": "Bob"},
                                              "phones": [{"phone": "+1 555", "type": "CELL"}]}]),
        "button_reply": await ana.reply_button(to_message="wamid.BIZ1", id="yes", title="Sí"),
        "list_reply": await ana.reply_list(to_message="wamid.BIZ2", id="row-2", title="Row 2"),
        "nfm_reply": await ana.reply_flow(to_message="wamid.BIZ3", response={"flow_token": "ft", "a": 1}),
        "button": await ana.tap_template_button(to_message="wamid.BIZ4", payload="STOP", text="Stop"),
        "reaction": await ana.react(to_message="wamid.BIZ5", emoji="👍"),
        "order": await ana.send_order("cat1", [{"product_retailer_id": "sku", "quantity": 1,
                                                "item_price": 9.5, "currency": "EUR"}]),
        "unsupported": await ana.send_unsupported("poll"),
        "system": await ana.change_number("34600999888"),
    }
    await emu.webhooks_idle()
    assert all(a.ok for a in emu.webhook_attempts)
    got = messages(await inbox_rows(store))
    assert set(got) == set(ids.values())
    m = {k: got[v] for k, v in ids.items()}
    assert m["text"].text == "Hola, ¿tenéis stock? 😮" and m["text"].referral is not None
    assert m["image"].text == "foto" and m["image"].content["mime_type"].startswith("image/")
    assert m["location"].content["latitude"] == 40.4168 and m["location"].text == "Sol"
    assert m["contacts"].content["contacts"][0]["name"]["formatted_name"] == "Bob"
    assert (m["button_reply"].text, m["button_reply"].payload, m["button_reply"].context_message_id) == (
        "Sí", "yes", "wamid.BIZ1")
    assert (m["list_reply"].text, m["list_reply"].payload) == ("Row 2", "row-2")
    assert m["nfm_reply"].payload is not None and "flow_token" in m["nfm_reply"].payload
    assert (m["button"].text, m["button"].payload) == ("Stop", "STOP")
    assert m["reaction"].text == "👍" and m["reaction"].context_message_id == "wamid.BIZ5"
    assert m["order"].content["catalog_id"] == "cat1"
    assert m["unsupported"].errors[0].code == 131051
    assert m["system"].type == "system"
    for msg in got.values():
        assert msg.contact.wa_id == "34600111222" and msg.phone_number_id == PNID
    rows = await inbox_rows(store)
    assert {r["state"] for r in rows} == {"pending"}  # left for the flow engine
    assert {r["contact_key"] for r in rows} == {"34600111222"}
    [contact] = await contact_rows(store)
    assert contact["profile_name"] == "Ana" and contact["last_inbound_at"] is not None


async def test_batched_payloads(setup: tuple[Store, str, EmulatorHandle]) -> None:
    store, _, emu = setup
    emu.webhook_modes(batch_size=50, window_s=0.2, batch_entries=True)
    users = [emu.user(f"3460000{i:04d}", name=f"U{i}") for i in range(10)]
    sent = await asyncio.gather(*(u.send_text(f"m{j}", wait=False) for u in users for j in range(5)))
    await emu.webhooks_idle()
    assert max(a.updates for a in emu.webhook_attempts) > 1  # really batched
    got = messages(await inbox_rows(store))
    assert set(got) == set(sent)
    assert len(await contact_rows(store)) == 10


async def test_duplicates_each_three_times(setup: tuple[Store, str, EmulatorHandle]) -> None:
    store, url, emu = setup
    emu.webhook_modes(duplicate_rate=1.0)  # every POST twice ...
    ana = emu.user("34600111222", name="Ana")
    ids = [await ana.send_text(f"hola {i}") for i in range(5)]
    await emu.webhooks_idle()
    bodies = {a.body for a in emu.webhook_attempts}
    async with httpx.AsyncClient() as c:  # ... and a third time, concurrently
        answers = await asyncio.gather(*(post(c, url, b) for b in bodies))
    assert all(r.status_code == 200 for r in answers)
    assert len(emu.webhook_attempts) == 10
    rows = await inbox_rows(store)
    assert sorted(r["provider_message_id"] for r in rows) == sorted(ids)
    assert len({r["dedup_key"] for r in rows}) == len(rows) == 5


async def _outbox_message(store: Store, wamid: str) -> int:
    async with store.begin() as conn:
        oid = await store.outbox.enqueue(conn, PNID, OutboundMessage(to="34600111222", type="text",
                                                                     content={"body": "hi"}),
                                         contact_key="34600111222", business_initiated=False)
        await store.outbox.record_accepted(conn, oid, wamid)
    return oid


@pytest.mark.parametrize("inline", [False, True], ids=["processor", "inline"])
async def test_reordered_and_duplicated_statuses_never_regress(store: Store, inline: bool) -> None:
    async with serve(store, config(apply_statuses_inline=inline)) as url:
        cfg = EmulatorConfig(callback_url=url, app_secret=SECRET, verify_token=TOKEN, phone_number_id=PNID,
                             waba_id=WABA)
        async with run_emulator(cfg) as emu:
            await _statuses_scenario(store, emu)


async def _statuses_scenario(store: Store, emu: EmulatorHandle) -> None:
    ana = emu.user("34600111222", name="Ana")
    await ana.send_text("hola")  # opens the window
    emu.webhook_modes(reorder=True, duplicate_rate=1.0, batch_size=1, window_s=0.3)
    async with httpx.AsyncClient() as c:
        wamids = []
        for i in range(4):
            r = await c.post(f"{emu.graph_url}/{PNID}/messages",
                             headers={"Authorization": f"Bearer {emu.config.access_token}"},
                             json={"messaging_product": "whatsapp", "to": "34600111222", "type": "text",
                                   "text": {"body": f"reply {i}"}})
            assert r.status_code == 200, r.text
            wamids.append(r.json()["messages"][0]["id"])
    oids = [await _outbox_message(store, w) for w in wamids]
    for w in wamids:
        await ana.wait_for_status(w, "read")
    await emu.webhooks_idle()
    for _ in range(500):  # the StatusProcessor applies them in the background
        statuses = [r for r in await inbox_rows(store) if r["kind"] == "status"]
        if {r["state"] for r in statuses} == {"done"}:
            break
        await asyncio.sleep(0.01)
    assert len(statuses) == 12 and {r["state"] for r in statuses} == {"done"}
    async with store.read() as conn:
        for oid in oids:
            rec = await store.outbox.get(conn, oid)
            assert rec is not None and rec.status == DeliveryStatus.READ.value


async def test_template_status_and_unknown_fields_kept(setup: tuple[Store, str, EmulatorHandle]) -> None:
    store, url, emu = setup
    tpl = emu.add_template("order_update", "Your order {{1}} shipped", status="PENDING")
    emu.set_template_status(tpl.id, "APPROVED")
    await emu.webhooks_idle()
    # an unknown message type, unknown fields at every level, an unknown webhook field
    doc = {"object": "whatsapp_business_account", "new_top": 1, "entry": [{"id": WABA, "x": 2, "changes": [
        {"field": "messages", "value": {
            "messaging_product": "whatsapp", "metadata": {"phone_number_id": PNID, "display_phone_number": "1"},
            "contacts": [{"profile": {"name": "Eve"}, "user_id": "US.777", "username": "@eve"}],
            "messages": [{"from_user_id": "US.777", "id": "wamid.POLL", "timestamp": "1760000000",
                          "type": "poll_vote", "poll_vote": {"poll": "p1", "options": [2]}, "new_field": [1]}]}},
        {"field": "brand_new_field", "value": {"anything": ["goes"]}}]}]}
    async with httpx.AsyncClient() as c:
        assert (await post(c, url, doc)).status_code == 200
    rows = await inbox_rows(store)
    kinds = {r["kind"]: r for r in rows}
    assert kinds["template_status"]["payload"]["event"] == "APPROVED"
    assert kinds["template_status"]["phone_number_id"] is None
    assert kinds["template_status"]["payload"]["waba_id"] == WABA
    poll = kinds["message"]
    assert poll["contact_key"] == "US.777"
    assert poll["payload"]["content"] == {"poll": "p1", "options": [2]}
    assert poll["payload"]["raw"]["new_field"] == [1]
    assert kinds["other"]["payload"]["raw"] == {"anything": ["goes"]}
    contacts = await contact_rows(store)
    assert any(c["user_id"] == "US.777" and c["profile_name"] == "Eve" for c in contacts)


async def test_contact_upsert_keeps_latest_inbound(setup: tuple[Store, str, EmulatorHandle]) -> None:
    store, _, emu = setup
    await emu.user("34600111222", name="Ana").send_text("uno")
    await emu.user("34600111222", name="Ana").send_text("dos")
    [c] = await contact_rows(store)
    assert c["wa_id"] == "34600111222"
    async with store.read() as conn:
        rec = await store.contacts.get(conn, PNID, "34600111222")
    assert rec is not None and rec.window_open()
    assert ContactRef(wa_id="34600111222").key == rec.contact_key
