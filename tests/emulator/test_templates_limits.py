"""Template CRUD, status webhooks and send-time checks; throughput and pair-rate limits."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from waflow.emulator import EmulatorConfig, EmulatorHandle, run_emulator

from .conftest import WebhookSink, make_config, msg

NAMED = {
    "name": "order_confirmation", "language": "en_US", "category": "UTILITY", "parameter_format": "named",
    "components": [
        {"type": "HEADER", "format": "TEXT", "text": "Order {{order_id}}"},
        {"type": "BODY", "text": "Thanks {{first_name}}, total {{total}}"},
        {"type": "FOOTER", "text": "Shop"},
        {"type": "BUTTONS", "buttons": [{"type": "QUICK_REPLY", "text": "Cancel"},
                                        {"type": "URL", "text": "Track", "url": "https://x.io/t/{{1}}"}]},
    ],
}


def tsend(name: str, components: list[dict[str, Any]], lang: str = "en_US") -> dict[str, Any]:
    return msg(type="template", template={"name": name, "language": {"code": lang}, "components": components})


def named_components(**override: Any) -> list[dict[str, Any]]:
    comps = [
        {"type": "header", "parameters": [{"type": "text", "parameter_name": "order_id", "text": "42"}]},
        {"type": "body", "parameters": [{"type": "text", "parameter_name": "first_name", "text": "Ana"},
                                        {"type": "text", "parameter_name": "total", "text": "9 €"}]},
        {"type": "button", "sub_type": "quick_reply", "index": "0", "parameters": [{"type": "payload",
                                                                                  "payload": "CANCEL"}]},
        {"type": "button", "sub_type": "url", "index": 1, "parameters": [{"type": "text", "text": "SKU42"}]},
    ]
    return comps


async def test_template_crud_and_status_webhooks(
    client: httpx.AsyncClient, emulator: EmulatorHandle, webhook_sink: WebhookSink
) -> None:
    waba = emulator.config.waba_id
    r = await client.post(f"/{waba}/message_templates", json=NAMED)
    assert r.status_code == 200, r.text
    created = r.json()
    assert created["status"] == "PENDING" and created["category"] == "UTILITY"
    tid = created["id"]
    phone = emulator.config.phone_number_id

    # pending templates cannot be sent
    r = await client.post(f"/{phone}/messages", json=tsend("order_confirmation", named_components()))
    assert (r.status_code, r.json()["error"]["code"]) == (404, 132001)

    emulator.set_template_status(tid, "APPROVED")
    await webhook_sink.wait_for(lambda: len(webhook_sink.payloads()) >= 1)
    update = webhook_sink.payloads()[0]
    entry = update["entry"][0]
    assert entry["id"] == waba and isinstance(entry["time"], int)
    change = entry["changes"][0]
    assert change["field"] == "message_template_status_update"
    assert change["value"]["event"] == "APPROVED"
    assert change["value"]["message_template_id"] == int(tid)
    assert change["value"]["message_template_name"] == "order_confirmation"

    listed = (await client.get(f"/{waba}/message_templates", params={"status": "APPROVED",
                                                                      "fields": "name,status"})).json()
    assert listed["data"] == [{"name": "order_confirmation", "status": "APPROVED", "id": tid}]
    assert (await client.get(f"/{tid}", params={"fields": "status"})).json() == {"status": "APPROVED", "id": tid}

    r = await client.post(f"/{phone}/messages", json=tsend("order_confirmation", named_components()))
    assert r.status_code == 200, r.text

    r = await client.post(f"/{tid}", json={"components": NAMED["components"][1:]})
    assert r.json() == {"success": True}
    r = await client.post(f"/{tid}", json={"category": "MARKETING"})
    assert r.json()["error"]["code"] == 131009

    r = await client.post(f"/{waba}/message_templates", json=NAMED)
    assert r.json()["error"]["code"] == 100  # same name + language already exists
    r = await client.post(f"/{waba}/message_templates", json=NAMED | {"name": "Bad Name"})
    assert r.json()["error"]["code"] == 100
    assert (await client.delete(f"/{waba}/message_templates", params={"name": "order_confirmation"})).json() == {
        "success": True}
    assert (await client.get(f"/{waba}/message_templates")).json()["data"] == []
    r = await client.post(f"/{phone}/messages", json=tsend("order_confirmation", named_components()))
    assert r.json()["error"]["code"] == 132001


async def test_template_send_checks(client: httpx.AsyncClient, emulator: EmulatorHandle) -> None:
    phone = emulator.config.phone_number_id
    named = emulator.emulator.templates.create(emulator.config.waba_id, NAMED)
    positional = emulator.add_template("greet", "Hi {{1}}, your code is {{2}}")

    async def code(body: dict[str, Any]) -> int:
        r = await client.post(f"/{phone}/messages", json=body)
        return int(r.json()["error"]["code"]) if r.status_code != 200 else 200

    body_params = [{"type": "body", "parameters": [{"type": "text", "text": "Ana"}, {"type": "text", "text": "1"}]}]
    assert await code(tsend("greet", body_params)) == 200
    assert await code(tsend("greet", body_params, lang="es")) == 132001
    assert await code(tsend("nope", body_params)) == 132001
    assert await code(tsend("greet", [{"type": "body", "parameters": [{"type": "text", "text": "Ana"}]}])) == 132000
    assert await code(tsend("greet", [])) == 132000
    named_in_positional = [{"type": "body", "parameters": [{"type": "text", "parameter_name": "a", "text": "x"},
                                                           {"type": "text", "parameter_name": "b", "text": "y"}]}]
    assert await code(tsend("greet", named_in_positional)) == 132012
    positional_in_named = named_components()
    positional_in_named[1] = {"type": "body", "parameters": [{"type": "text", "text": "Ana"},
                                                             {"type": "text", "text": "9"}]}
    assert await code(tsend("order_confirmation", positional_in_named)) == 132012
    missing_button = named_components()[:3]
    assert await code(tsend("order_confirmation", missing_button)) == 132000

    emulator.set_template_status(positional.id, "PAUSED")
    assert await code(tsend("greet", body_params)) == 132015
    emulator.set_template_status(positional.id, "DISABLED")
    assert await code(tsend("greet", body_params)) == 132016
    emulator.set_template_status(named.id, "REJECTED", "INVALID_FORMAT")
    assert await code(tsend("order_confirmation", named_components())) == 132001


async def test_preloaded_templates(webhook_sink: WebhookSink) -> None:
    cfg = make_config(webhook_sink, templates=[{"name": "welcome", "components": [{"type": "BODY", "text": "Hi"}]}])
    async with run_emulator(cfg) as emu, httpx.AsyncClient(
        base_url=emu.base_url, headers={"Authorization": f"Bearer {emu.config.access_token}"}
    ) as c:
        r = await c.post(f"/{emu.config.phone_number_id}/messages", json=tsend("welcome", []))
        assert r.status_code == 200


async def test_throughput_limit_130429(webhook_sink: WebhookSink) -> None:
    async with run_emulator(make_config(webhook_sink, throughput_mps=20, enforce_window=False)) as emu, \
            httpx.AsyncClient(base_url=emu.base_url,
                              headers={"Authorization": f"Bearer {emu.config.access_token}"}) as c:
        url = f"/{emu.config.phone_number_id}/messages"
        answers = await asyncio.gather(*(c.post(url, json=msg(to=f"3460000{i:04d}", type="text",
                                                                  text={"body": "x"})) for i in range(40)))
        codes = [r.status_code for r in answers]
        assert 18 <= codes.count(200) <= 22, codes
        throttled = [r.json()["error"] for r in answers if r.status_code != 200]
        assert {e["code"] for e in throttled} == {130429}
        assert all(r.status_code == 400 for r in answers if r.status_code != 200)
        assert throttled[0]["message"] == "(#130429) Rate limit hit"
        assert len(emu.sent()) == codes.count(200)
        emu.advance_clock(seconds=1)
        assert (await c.post(url, json=msg(type="text", text={"body": "x"}))).status_code == 200


async def test_pair_rate_limit_131056(webhook_sink: WebhookSink) -> None:
    cfg = make_config(webhook_sink, pair_burst=5, throughput_mps=1000, enforce_window=False)
    async with run_emulator(cfg) as emu, httpx.AsyncClient(
        base_url=emu.base_url, headers={"Authorization": f"Bearer {emu.config.access_token}"}
    ) as c:
        url = f"/{emu.config.phone_number_id}/messages"
        codes = []
        for _ in range(7):
            r = await c.post(url, json=msg(type="text", text={"body": "x"}))
            codes.append(r.status_code if r.status_code == 200 else r.json()["error"]["code"])
        assert codes == [200] * 5 + [131056] * 2
        # other recipients are unaffected
        assert (await c.post(url, json=msg(to="34699999999", type="text", text={"body": "x"}))).status_code == 200
        emu.advance_clock(seconds=6)  # one message per 6 s refills
        assert (await c.post(url, json=msg(type="text", text={"body": "x"}))).status_code == 200
        r = await c.post(url, json=msg(type="text", text={"body": "x"}))
        assert r.json()["error"]["code"] == 131056


async def test_default_limits() -> None:
    cfg = EmulatorConfig()
    assert cfg.throughput_mps == 80 and cfg.pair_burst == 45 and abs(cfg.pair_rate_per_s - 1 / 6) < 1e-9
