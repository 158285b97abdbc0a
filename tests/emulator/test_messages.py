"""Every outbound message type is accepted over a real socket, with Meta's answer shape."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from waflow.emulator import EmulatorHandle

from .conftest import WebhookSink, msg

LINK = "https://example.com/media/file.jpg"

ACCEPTED: dict[str, dict[str, Any]] = {
    "text": {"type": "text", "text": {"body": "hello", "preview_url": True}},
    "image_link": {"type": "image", "image": {"link": LINK, "caption": "a picture"}},
    "video_link": {"type": "video", "video": {"link": LINK, "caption": "a video"}},
    "audio_voice": {"type": "audio", "audio": {"link": LINK, "voice": True}},
    "document": {"type": "document", "document": {"link": LINK, "caption": "doc", "filename": "a.pdf"}},
    "sticker": {"type": "sticker", "sticker": {"link": LINK}},
    "location": {"type": "location", "location": {"latitude": 37.44, "longitude": "-122.16", "name": "Philz",
                                                  "address": "101 Forest Ave"}},
    "contacts": {"type": "contacts", "contacts": [{"name": {"formatted_name": "Barbara J"},
                                                   "phones": [{"phone": "+1 650 555 1234", "type": "CELL",
                                                               "wa_id": "16505551234"}]}]},
    "buttons": {"type": "interactive", "interactive": {
        "type": "button", "header": {"type": "text", "text": "Header"}, "body": {"text": "Pick one"},
        "footer": {"text": "footer"},
        "action": {"buttons": [{"type": "reply", "reply": {"id": f"b{i}", "title": f"Option {i}"}} for i in range(3)]},
    }},
    "list": {"type": "interactive", "interactive": {
        "type": "list", "body": {"text": "Menu"},
        "action": {"button": "Choose", "sections": [
            {"title": "A", "rows": [{"id": f"a{i}", "title": f"Row {i}", "description": "d" * 72} for i in range(5)]},
            {"title": "B", "rows": [{"id": f"b{i}", "title": "t" * 24} for i in range(5)]},
        ]},
    }},
    "cta_url": {"type": "interactive", "interactive": {
        "type": "cta_url", "body": {"text": "Visit"},
        "action": {"name": "cta_url", "parameters": {"display_text": "Open", "url": "https://example.com"}},
    }},
    "location_request": {"type": "interactive", "interactive": {
        "type": "location_request_message", "body": {"text": "Where are you?"}, "action": {"name": "send_location"},
    }},
    "flow": {"type": "interactive", "interactive": {
        "type": "flow", "body": {"text": "Book"},
        "action": {"name": "flow", "parameters": {"flow_message_version": "3", "flow_id": "123", "flow_cta": "Book!",
                                                  "flow_token": "tok", "mode": "published",
                                                  "flow_action": "navigate",
                                                  "flow_action_payload": {"screen": "S1"}}},
    }},
    "product": {"type": "interactive", "interactive": {
        "type": "product", "action": {"catalog_id": "c1", "product_retailer_id": "sku1"}}},
    "product_list": {"type": "interactive", "interactive": {
        "type": "product_list", "header": {"type": "text", "text": "Shop"}, "body": {"text": "Our picks"},
        "action": {"catalog_id": "c1", "sections": [{"title": "S", "product_items": [{"product_retailer_id": "a"}]}]},
    }},
    "template": {"type": "template", "template": {"name": "hello_world", "language": {"code": "en_US"}}},
}


@pytest.mark.parametrize("name", sorted(ACCEPTED))
async def test_every_type_is_accepted(name: str, client: httpx.AsyncClient, emulator: EmulatorHandle) -> None:
    emulator.add_template("hello_world", "Hello World")
    user = emulator.user("34600111222")
    await user.send_text("hi")  # opens the window so free-form sends are deliverable
    r = await client.post(f"/{emulator.config.phone_number_id}/messages", json=msg(**ACCEPTED[name]))
    assert r.status_code == 200, r.text
    data = r.json()
    assert data["messaging_product"] == "whatsapp"
    assert data["contacts"] == [{"input": "34600111222", "wa_id": "34600111222"}]
    wamid = data["messages"][0]["id"]
    assert wamid.startswith("wamid.") and len(wamid) > 40
    received = user.received()
    assert [m.wamid for m in received] == [wamid]
    assert received[0].type == ACCEPTED[name]["type"]
    assert received[0].content == ACCEPTED[name][ACCEPTED[name]["type"]]


async def test_reaction_context_callback_data_and_statuses(
    client: httpx.AsyncClient, emulator: EmulatorHandle, webhook_sink: WebhookSink
) -> None:
    user = emulator.user("34600111222")
    inbound = await user.send_text("hola")
    phone = emulator.config.phone_number_id
    r = await client.post(f"/{phone}/messages", json=msg(type="text", text={"body": "reply"},
                                                          context={"message_id": inbound},
                                                          biz_opaque_callback_data="outbox-7"))
    wamid = r.json()["messages"][0]["id"]
    r2 = await client.post(f"/{phone}/messages", json=msg(type="reaction",
                                                           reaction={"message_id": inbound, "emoji": "😀"}))
    react_id = r2.json()["messages"][0]["id"]
    await user.wait_for_status(wamid, "read")
    await webhook_sink.wait_for(lambda: webhook_sink.statuses(wamid) == ["sent", "delivered", "read"])
    await emulator.webhooks_idle()
    statuses = [s for s in webhook_sink.items("statuses") if s["id"] == wamid]
    assert all(s["biz_opaque_callback_data"] == "outbox-7" for s in statuses)
    assert all(s["recipient_id"] == "34600111222" for s in statuses)
    assert webhook_sink.statuses(react_id) == ["sent"]  # reactions only get `sent`
    assert user.received()[0].context_id == inbound
    assert emulator.sends_by_callback_data()["outbox-7"] == 1


async def test_mark_read_and_typing_indicator(client: httpx.AsyncClient, emulator: EmulatorHandle) -> None:
    inbound = await emulator.user("34600111222").send_text("hola")
    phone = emulator.config.phone_number_id
    r = await client.post(f"/{phone}/messages", json={"messaging_product": "whatsapp", "status": "read",
                                                       "message_id": inbound})
    assert r.json() == {"success": True}
    r = await client.post(f"/{phone}/messages", json={"messaging_product": "whatsapp", "status": "read",
                                                       "message_id": inbound, "typing_indicator": {"type": "text"}})
    assert r.json() == {"success": True}
    assert emulator.emulator.state.read_receipts == [inbound]
    assert emulator.emulator.state.typing_indicators == [inbound]
    assert emulator.sent() == []  # neither counts as a message


async def test_phone_formats_and_bsuid_recipient(client: httpx.AsyncClient, emulator: EmulatorHandle) -> None:
    user = emulator.user("16315551234")
    await user.send_text("hi")
    phone = emulator.config.phone_number_id
    r = await client.post(f"/{phone}/messages", json=msg(to="(631) 555-1234", type="text", text={"body": "x"}))
    assert r.json()["contacts"] == [{"input": "(631) 555-1234", "wa_id": "16315551234"}]
    body = {"messaging_product": "whatsapp", "recipient": user.user_id, "type": "text", "text": {"body": "y"}}
    r = await client.post(f"/{phone}/messages", json=body)
    assert r.status_code == 200
    assert r.json()["contacts"] == [{"input": user.user_id, "user_id": user.user_id}]
    assert [m.content["body"] for m in user.received()] == ["x", "y"]


async def test_unversioned_and_other_versions(emulator: EmulatorHandle) -> None:
    headers = {"Authorization": f"Bearer {emulator.config.access_token}"}
    async with httpx.AsyncClient(base_url=emulator.base_url, headers=headers) as c:
        for prefix in ("", "/v17.0", "/v25.0"):
            r = await c.post(f"{prefix}/{emulator.config.phone_number_id}/messages",
                             json=msg(type="text", text={"body": "x"}))
            assert r.status_code == 200, (prefix, r.text)


async def test_outside_window_is_accepted_then_fails_131047(
    client: httpx.AsyncClient, emulator: EmulatorHandle, webhook_sink: WebhookSink
) -> None:
    user = emulator.user("34600111222")
    await user.send_text("hola")
    emulator.advance_clock(hours=25)
    phone = emulator.config.phone_number_id
    r = await client.post(f"/{phone}/messages", json=msg(type="text", text={"body": "late"}))
    assert r.status_code == 200
    wamid = r.json()["messages"][0]["id"]
    await webhook_sink.wait_for(lambda: "failed" in webhook_sink.statuses(wamid))
    failed = next(s for s in webhook_sink.items("statuses") if s["id"] == wamid)
    assert failed["errors"][0]["code"] == 131047
    assert failed["errors"][0]["title"] == "Re-engagement message"
    assert user.received()[-1].status == "failed"
    # a template still goes through outside the window
    emulator.add_template("reminder", "Hi {{1}}")
    r = await client.post(f"/{phone}/messages", json=msg(type="template", template={
        "name": "reminder", "language": {"code": "en_US"},
        "components": [{"type": "body", "parameters": [{"type": "text", "text": "Ana"}]}]}))
    assert r.status_code == 200
    assert r.json()["messages"][0]["message_status"] == "accepted"
    tid = r.json()["messages"][0]["id"]
    await user.wait_for_status(tid, "delivered")
    # the window reopens when the user writes again
    await user.send_text("back")
    r = await client.post(f"/{phone}/messages", json=msg(type="text", text={"body": "welcome back"}))
    await user.wait_for_status(r.json()["messages"][0]["id"], "delivered")
