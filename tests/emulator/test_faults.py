"""Fault injection: error rates by code, async-code failures, latency, dropped connections, hangs, 5xx."""

from __future__ import annotations

import time

import httpx
import pytest

from waflow.emulator import EmulatorHandle

from .conftest import msg


async def test_error_rates(client: httpx.AsyncClient, emulator: EmulatorHandle) -> None:
    emulator.faults._rng.seed(1)
    emulator.faults.set(error_rates={131000: 0.5, 130429: 0.2})
    url = f"/{emulator.config.phone_number_id}/messages"
    codes = []
    for i in range(200):
        r = await client.post(url, json=msg(to=f"3460{i:07d}", type="template",
                                             template={"name": "t", "language": {"code": "en_US"}}))
        codes.append(r.status_code if r.status_code == 200 else r.json()["error"]["code"])
    assert 70 <= codes.count(131000) <= 130 and 20 <= codes.count(130429) <= 60
    r500 = await client.post(url, json=msg(type="text", text={"body": "x"}))
    while r500.status_code == 200 or r500.json()["error"]["code"] != 131000:
        r500 = await client.post(url, json=msg(type="text", text={"body": "x"}))
    assert r500.status_code == 500  # HTTP status from the shared error table
    emulator.faults.clear()
    assert (await client.get(f"/{emulator.config.phone_number_id}")).status_code == 200


async def test_async_code_is_accepted_then_fails(client: httpx.AsyncClient, emulator: EmulatorHandle) -> None:
    emulator.faults.set(error_rates={131026: 1.0})
    r = await client.post(f"/{emulator.config.phone_number_id}/messages", json=msg(type="text", text={"body": "x"}))
    assert r.status_code == 200
    m = await emulator.user("34600111222").wait_for_status(r.json()["messages"][0]["id"], "failed")
    assert m.errors[0]["code"] == 131026


async def test_latency_drop_timeout_and_5xx(client: httpx.AsyncClient, emulator: EmulatorHandle) -> None:
    url = f"/{emulator.config.phone_number_id}/messages"
    body = msg(type="text", text={"body": "x"})
    emulator.faults.set(latency_ms=80)
    t0 = time.monotonic()
    assert (await client.post(url, json=body)).status_code == 200
    assert time.monotonic() - t0 >= 0.08

    emulator.faults.set(latency_ms=0, drop_rate=1.0)
    with pytest.raises(httpx.RemoteProtocolError):
        await client.post(url, json=body)

    emulator.config.hang_seconds = 5
    emulator.faults.set(drop_rate=0.0, timeout_rate=1.0)
    with pytest.raises(httpx.ReadTimeout):
        await client.post(url, json=body, timeout=0.2)

    emulator.faults.set(timeout_rate=0.0, server_error_rate=1.0)
    r = await client.post(url, json=body)
    assert r.status_code == 502 and r.headers["content-type"].startswith("text/html")

    # control plane changes apply at runtime; media/templates are untouched by default
    async with httpx.AsyncClient() as c:
        r = await c.put(f"{emulator.base_url}/_emulator/faults", json={"server_error_rate": 0.0,
                                                                       "error_rates": {"131016": 1.0}})
        assert r.json()["error_rates"] == {"131016": 1.0}
        r = await c.put(f"{emulator.base_url}/_emulator/faults", json={"drop_rate": 0.9, "timeout_rate": 0.9})
        assert r.status_code == 400
    r = await client.post(url, json=body)
    assert (r.status_code, r.json()["error"]["code"]) == (500, 131016)
    assert (await client.get(f"/{emulator.config.phone_number_id}")).status_code == 200
    assert emulator.sent() == [] or all(m.type == "text" for m in emulator.sent())
