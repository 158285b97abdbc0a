"""Signed webhooks: envelope, ASCII-escaped signature, retries, duplicate/reorder/batch, handshake, users."""

from __future__ import annotations

import json

import httpx

from waflow.emulator import EmulatorHandle, inbound

from .conftest import APP_SECRET, WebhookSink, msg


async def test_inbound_text_envelope_and_signature(emulator: EmulatorHandle, webhook_sink: WebhookSink) -> None:
    user = emulator.user("34600111222", name="Ana Ruíz")
    wamid = await user.send_text("Hola, ¿tenéis stock? 😮")
    got = webhook_sink.received[-1]
    assert got.signature_ok()
    assert got.headers["content-type"] == "application/json"
    raw = got.body
    assert raw.isascii()
    assert b"\\u00bften\\u00e9is" in raw and b"\\ud83d\\ude2e" in raw
    # the signature covers the escaped bytes, not a UTF-8 re-serialisation
    reencoded = json.dumps(json.loads(raw), ensure_ascii=False, separators=(",", ":")).encode()
    assert reencoded != raw
    payload = got.json()
    assert payload["object"] == "whatsapp_business_account"
    entry = payload["entry"][0]
    assert entry["id"] == emulator.config.waba_id
    change = entry["changes"][0]
    assert change["field"] == "messages"
    value = change["value"]
    assert value["messaging_product"] == "whatsapp"
    assert value["metadata"] == {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"}
    assert value["contacts"] == [{"profile": {"name": "Ana Ruíz"}, "wa_id": "34600111222", "user_id": user.user_id}]
    m = value["messages"][0]
    assert m["from"] == "34600111222" and m["id"] == wamid and m["type"] == "text"
    assert m["text"] == {"body": "Hola, ¿tenéis stock? 😮"}
    assert isinstance(m["timestamp"], str) and m["timestamp"].isdigit()


async def test_every_inbound_type(emulator: EmulatorHandle, webhook_sink: WebhookSink,
                                  client: httpx.AsyncClient) -> None:
    user = emulator.user("34600111222")
    first = await user.send_text("from an ad", referral=inbound.referral())
    biz = (await client.post(f"/{emulator.config.phone_number_id}/messages",
                             json=msg(type="text", text={"body": "hi"}))).json()["messages"][0]["id"]
    await user.send_image(caption="pic")
    await user.send_video()
    await user.send_audio(voice=True)
    await user.send_document(filename="cv.pdf")
    await user.send_sticker()
    await user.send_location(40.4, -3.7, name="Sol", address="Madrid")
    await user.send_contacts([{"name": {"formatted_name": "Bo"}, "phones": [{"phone": "+1", "wa_id": "1"}]}])
    await user.reply_button(to_message=biz, id="yes", title="Yes")
    await user.reply_list(to_message=biz, id="row1", title="Row", description="d")
    await user.tap_template_button(to_message=biz, payload="CANCEL", text="Cancel")
    await user.reply_flow(to_message=biz, response={"flow_token": "t", "ok": True})
    await user.react(to_message=biz, emoji="👍")
    await user.send_text("quoting", reply_to=biz)
    await user.send_unsupported("poll")
    await user.send_order("cat1", [{"product_retailer_id": "a", "quantity": 1, "item_price": 9, "currency": "EUR"}])
    await user.change_number("34600999888")
    messages = webhook_sink.items("messages")
    types = [m["type"] for m in messages]
    assert types == ["text", "image", "video", "audio", "document", "sticker", "location", "contacts",
                     "interactive", "interactive", "button", "interactive", "reaction", "text", "unsupported",
                     "order", "system"]
    assert messages[0]["id"] == first and messages[0]["referral"]["source_type"] == "ad"
    assert messages[8]["context"] == {"from": "15550783881", "id": biz}
    assert messages[8]["interactive"]["button_reply"] == {"id": "yes", "title": "Yes"}
    assert messages[10]["button"] == {"payload": "CANCEL", "text": "Cancel"}
    assert messages[12]["reaction"] == {"message_id": biz, "emoji": "👍"}
    assert messages[14]["errors"][0]["code"] == 131051
    assert all(r.signature_ok() for r in webhook_sink.received)


async def test_retries_on_non_200(emulator: EmulatorHandle, webhook_sink: WebhookSink) -> None:
    webhook_sink.fail_next = 2
    webhook_sink.fail_status = 503
    wamid = await emulator.user("34600111222").send_text("retry me")
    await emulator.webhooks_idle()
    assert webhook_sink.answered == [503, 503, 200]
    bodies = {r.body for r in webhook_sink.received}
    assert len(bodies) == 1  # retries resend the identical signed bytes
    assert [a.attempt for a in emulator.webhook_attempts] == [1, 2, 3]
    assert webhook_sink.items("messages")[0]["id"] == wamid


async def test_gives_up_after_schedule_and_transport_failures(emulator: EmulatorHandle,
                                                              webhook_sink: WebhookSink) -> None:
    webhook_sink.fail_next = 10
    await emulator.user("34600111222").send_text("doomed", wait=False)
    await emulator.webhooks_idle()
    assert len(webhook_sink.received) == 4  # first try + 3 retries of the test schedule
    assert len(emulator.emulator.webhooks.dropped) == 1
    # an unreachable receiver is a transport failure, retried the same way
    emulator.set_callback("http://127.0.0.1:9/unreachable")
    await emulator.user("34600111222").send_text("nobody home", wait=False)
    await emulator.webhooks_idle()
    assert [a.error is not None for a in emulator.webhook_attempts[-4:]] == [True] * 4


async def test_duplicate_mode(emulator: EmulatorHandle, webhook_sink: WebhookSink) -> None:
    emulator.webhook_modes(duplicate_rate=1.0)
    wamid = await emulator.user("34600111222").send_text("twice")
    await emulator.webhooks_idle()
    assert [m["id"] for m in webhook_sink.items("messages")] == [wamid, wamid]


async def test_batch_and_reorder_modes(emulator: EmulatorHandle, webhook_sink: WebhookSink,
                                       client: httpx.AsyncClient) -> None:
    user = emulator.user("34600111222")
    await user.send_text("open window")
    emulator.webhook_modes(batch_size=1000, window_s=0.05)
    phone = emulator.config.phone_number_id
    ids = [(await client.post(f"/{phone}/messages", json=msg(type="text", text={"body": str(i)}))).json()
           ["messages"][0]["id"] for i in range(5)]
    for wamid in ids:
        await user.wait_for_status(wamid, "read")
    await emulator.webhooks_idle()
    batched = [p for p in webhook_sink.payloads()[1:]]
    total = sum(len(c["value"].get("statuses", [])) for p in batched for e in p["entry"] for c in e["changes"])
    assert total == 15
    assert len(batched) < 15  # several statuses per POST
    assert max(len(c["value"]["statuses"]) for p in batched for e in p["entry"] for c in e["changes"]) > 1

    emulator.webhook_modes(batch_size=1, reorder=True, window_s=0.05)
    emulator.emulator.webhooks._rng.seed(3)
    before = len(webhook_sink.items("messages"))
    sent = [await user.send_text(f"m{i}", wait=False) for i in range(8)]
    await emulator.webhooks_idle()
    arrived = [m["id"] for m in webhook_sink.items("messages")[before:]]
    assert sorted(arrived) == sorted(sent) and arrived != sent

    emulator.webhook_modes(batch_size=10, reorder=False, batch_entries=True)
    before_posts = len(webhook_sink.payloads())
    emulator.set_template_status(emulator.add_template("t1", status="PENDING").id, "APPROVED")
    await user.send_text("mixed", wait=False)
    await emulator.webhooks_idle()
    last = webhook_sink.payloads()[before_posts:]
    assert len(last) == 1 and len(last[0]["entry"]) == 2  # one POST, one entry per change


async def test_handshake(emulator: EmulatorHandle, webhook_sink: WebhookSink) -> None:
    assert await emulator.verify_callback()
    emulator.config.verify_token = "wrong"
    assert not await emulator.verify_callback()
    async with httpx.AsyncClient() as c:
        r = await c.post(f"{emulator.base_url}/_emulator/webhooks/verify")
        assert r.json() == {"verified": False}


async def test_control_plane_users_and_logs(emulator: EmulatorHandle, webhook_sink: WebhookSink,
                                            client: httpx.AsyncClient) -> None:
    base = f"{emulator.base_url}/_emulator"
    async with httpx.AsyncClient() as c:
        r = await c.post(f"{base}/users/34611222333/messages",
                         json={"name": "Luis", "type": "text", "text": {"body": "hola"}})
        assert r.json()["delivered"] is True
        r = await c.post(f"{base}/users/34611222333/messages",
                         json={"type": "image", "image": {"data_base64": "/9j/AA==", "mime_type": "image/jpeg"}})
        assert r.status_code == 200
        assert webhook_sink.items("messages")[-1]["image"]["mime_type"] == "image/jpeg"
        sent = await client.post(f"/{emulator.config.phone_number_id}/messages",
                                 json=msg(to="34611222333", type="text", text={"body": "hi"},
                                          biz_opaque_callback_data="ob-1"))
        wamid = sent.json()["messages"][0]["id"]
        await emulator.user("34611222333").wait_for_status(wamid, "read")
        received = (await c.get(f"{base}/users/34611222333/received")).json()
        assert [(m["wamid"], m["type"], m["biz_opaque_callback_data"], m["status"]) for m in received] == [
            (wamid, "text", "ob-1", "read")]
        assert len((await c.get(f"{base}/sent")).json()) == 1
        r = await c.post(f"{base}/messages/{wamid}/status", json={"status": "failed", "code": 131026})
        assert r.json()["status"] == "read"  # read is final: a late failure does not regress it
        r = await c.post(f"{base}/clock", json={"hours": 25})
        assert r.json()["offset"] >= 25 * 3600
        r = await c.patch(f"{base}/config", json={"throughput_mps": 5})
        assert r.json()["throughput_mps"] == 5
        r = await c.patch(f"{base}/config", json={"app_secret": "x"})
        assert r.status_code == 400
        r = await c.put(f"{base}/webhooks/modes", json={"duplicate_rate": 0.5})
        assert r.json()["duplicate_rate"] == 0.5
        r = await c.get(f"{base}/webhooks/attempts")
        assert r.json()[0]["signature"].startswith("sha256=")
    assert APP_SECRET not in r.text
