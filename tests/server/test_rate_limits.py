"""Rate limits of `waflow serve`'s intake, over real sockets, on the buckets' own clock (a `ManualClock`: time
moves only when the test says so).

- refused requests (no / wrong API key, missing / bad webhook signature) cost the client address a token:
  beyond the burst they are answered 429 + Retry-After, other addresses untouched;
- a validly signed webhook from that address is still stored and answered 200, never 429;
- the admin API is limited per key (429 + Retry-After), another key untouched;
- the global ceiling answers 503 + Retry-After, and refused requests do not use it up;
- the client address behind a trusted proxy is its `X-Forwarded-For`; anyone else's `X-Forwarded-For` is ignored.

Each test runs what `waflow serve` runs (`serve_in_process`) with its own limits; clients leave from distinct
127.0.0.x source addresses.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from waflow.config import hash_api_key, load_settings
from waflow.emulator import EmulatorConfig, EmulatorHandle, run_emulator
from waflow.server.intake import Intake
from waflow.server.testing import API_KEY, ManualClock, serve_in_process, write_config
from waflow.store.tables import inbound_events
from waflow.webhooks.signature import sign

from .intake_helpers import client, message_body, signed

OTHER_KEY = "a-second-admin-key-for-the-limits"


@pytest.fixture
async def emu() -> AsyncIterator[EmulatorHandle]:
    async with run_emulator(EmulatorConfig(app_secret="limits-app-secret", verify_token="limits-vt")) as handle:
        yield handle


def settings_for(tmp_path: Path, emu: EmulatorHandle, **server: Any) -> Any:
    path = write_config(tmp_path, emu, port=0, lift_limits=False,
                        server={"run_engine": False, "run_dispatcher": False, **server})
    return load_settings(path, overrides={"api": {"keys": [hash_api_key(API_KEY), hash_api_key(OTHER_KEY)]}})


async def stored(app: Intake, wamid: str) -> int:
    store = app.app.app.state.parts.store  # type: ignore[attr-defined]
    async with store.read() as conn:
        query = select(func.count()).select_from(inbound_events).where(inbound_events.c.provider_message_id == wamid)
        return int((await conn.execute(query)).scalar_one())


async def test_refused_requests_are_limited_per_address_and_signed_webhooks_never(
    tmp_path: Path, emu: EmulatorHandle
) -> None:
    clock = ManualClock()
    settings = settings_for(tmp_path, emu, auth_failures_burst=4, auth_failures_per_s=0.5)
    async with serve_in_process(settings, clock=clock) as (url, app), \
            client(url, "127.0.0.21") as flood, client(url, "127.0.0.22") as other:
        _, body = message_body(emu)
        unsigned = [(await flood.post("/webhook", content=body)).status_code for _ in range(4)]
        assert unsigned == [401] * 4
        r = await flood.post("/webhook", content=body)
        assert r.status_code == 429
        assert r.headers["retry-after"] == "2"  # one token at 0.5/s
        assert r.headers["connection"] == "close"
        bad = await flood.post("/webhook", content=body, headers={"X-Hub-Signature-256": "sha256=" + "0" * 64})
        assert bad.status_code == 429  # a wrong signature is a failure too
        no_key = await flood.post("/api/v1/messages", content=b"{not json")
        assert no_key.status_code == 429 and no_key.json()["error"] == "rate_limited"

        # the same address's validly signed webhook: stored and 200, while it is over its failure budget
        wamid, good = message_body(emu)
        ok = await flood.post("/webhook", content=good, headers=signed(emu, good))
        assert ok.status_code == 200 and await stored(app, wamid) == 1

        # another address has its own budget
        assert (await other.post("/webhook", content=body)).status_code == 401

        clock.advance(seconds=2)  # one token back
        assert (await flood.post("/webhook", content=body)).status_code == 401
        assert (await flood.post("/webhook", content=body)).status_code == 429


async def test_wrong_api_keys_are_limited_per_address_but_the_right_key_is_not(
    tmp_path: Path, emu: EmulatorHandle
) -> None:
    clock = ManualClock()
    settings = settings_for(tmp_path, emu, auth_failures_burst=3, auth_failures_per_s=1)
    async with serve_in_process(settings, clock=clock) as (url, _app), client(url, "127.0.0.23") as c:
        wrong = {"Authorization": "Bearer wrong-key-wrong-key-wrong"}
        assert [(await c.get("/api/v1/flows", headers=wrong)).status_code for _ in range(3)] == [401] * 3
        r = await c.get("/api/v1/flows", headers=wrong)
        assert r.status_code == 429 and r.headers["retry-after"] == "1"
        good = await c.get("/api/v1/flows", headers={"Authorization": f"Bearer {API_KEY}"})
        assert good.status_code == 200


async def test_the_admin_api_is_limited_per_key(tmp_path: Path, emu: EmulatorHandle) -> None:
    clock = ManualClock()
    settings = settings_for(tmp_path, emu, api_burst=3, api_requests_per_s=0.25)
    async with serve_in_process(settings, clock=clock) as (url, _app), client(url, "127.0.0.24") as c:
        first = {"Authorization": f"Bearer {API_KEY}"}
        assert [(await c.get("/api/v1/flows", headers=first)).status_code for _ in range(3)] == [200] * 3
        r = await c.get("/api/v1/flows", headers=first)
        assert r.status_code == 429
        assert r.headers["retry-after"] == "4"
        assert r.json()["error"] == "rate_limited" and API_KEY not in r.text
        second = {"Authorization": f"Bearer {OTHER_KEY}"}
        assert (await c.get("/api/v1/flows", headers=second)).status_code == 200
        clock.advance(seconds=4)
        assert (await c.get("/api/v1/flows", headers=first)).status_code == 200
        assert (await c.get("/api/v1/flows", headers=first)).status_code == 429


async def test_the_global_ceiling_answers_503_and_refused_requests_do_not_use_it(
    tmp_path: Path, emu: EmulatorHandle
) -> None:
    clock = ManualClock()
    settings = settings_for(tmp_path, emu, intake_burst=3, intake_requests_per_s=1,
                            auth_failures_burst=1000, auth_failures_per_s=1000)
    async with serve_in_process(settings, clock=clock) as (url, app), \
            client(url, "127.0.0.25") as meta, client(url, "127.0.0.26") as flood:
        _, unsigned = message_body(emu)
        for _ in range(20):  # refused before the ceiling: they take nothing from it
            assert (await flood.post("/webhook", content=unsigned)).status_code == 401
        answers = []
        for _ in range(4):
            wamid, body = message_body(emu)
            r = await meta.post("/webhook", content=body, headers=signed(emu, body))
            answers.append((r.status_code, await stored(app, wamid)))
        assert answers[:3] == [(200, 1)] * 3
        assert answers[3] == (503, 0)  # shed, nothing stored: Meta retries
        clock.advance(seconds=1)
        wamid, body = message_body(emu)
        r = await meta.post("/webhook", content=body, headers=signed(emu, body))
        assert r.status_code == 200 and await stored(app, wamid) == 1
        r = await meta.post("/webhook", content=body, headers=signed(emu, body))
        assert r.status_code == 503 and r.headers["retry-after"] == "1"


async def test_forwarded_for_is_believed_from_trusted_proxies_only(tmp_path: Path, emu: EmulatorHandle) -> None:
    clock = ManualClock()
    settings = settings_for(tmp_path, emu, auth_failures_burst=2, auth_failures_per_s=0.1,
                            trusted_proxies=["127.0.0.30"])
    async with serve_in_process(settings, clock=clock) as (url, _app), \
            client(url, "127.0.0.30") as proxy, client(url, "127.0.0.31") as direct:
        _, body = message_body(emu)

        async def via_proxy(address: str) -> int:
            r = await proxy.post("/webhook", content=body, headers={"X-Forwarded-For": f"203.0.113.9, {address}"})
            return r.status_code

        # behind the proxy, each forwarded client has its own budget (the left entry, a client's claim, is not it)
        assert [await via_proxy("198.51.100.1") for _ in range(3)] == [401, 401, 429]
        assert [await via_proxy("198.51.100.2") for _ in range(3)] == [401, 401, 429]
        # the proxy's own requests are not the forwarded clients'
        assert (await proxy.post("/webhook", content=body)).status_code == 401

        # anyone else's X-Forwarded-For is ignored: a new "address" each time does not escape the limit
        spoofed = [(await direct.post("/webhook", content=body,
                                      headers={"X-Forwarded-For": f"198.51.100.{i}"})).status_code
                   for i in range(10, 14)]
        assert spoofed == [401, 401, 429, 429]


async def test_a_bad_signature_then_a_good_one_from_the_same_address(tmp_path: Path, emu: EmulatorHandle) -> None:
    """The failure limit never turns a signed webhook away, also once the address's bad ones are answered 429."""
    clock = ManualClock()
    settings = settings_for(tmp_path, emu, auth_failures_burst=2, auth_failures_per_s=0.1)
    async with serve_in_process(settings, clock=clock) as (url, app), client(url, "127.0.0.27") as c:
        wamid, body = message_body(emu)
        wrong = {"Content-Type": "application/json", "X-Hub-Signature-256": sign(body, "not-the-secret")}
        statuses = [(await c.post("/webhook", content=body, headers=wrong)).status_code for _ in range(4)]
        assert statuses == [403, 403, 429, 429]
        assert await stored(app, wamid) == 0
        for _ in range(3):  # each on a new connection (the 429s closed theirs): the slow lane reads them
            r = await c.post("/webhook", content=body, headers=signed(emu, body))
            assert r.status_code == 200
        assert await stored(app, wamid) == 1
