"""The emulator's control plane (`/_emulator/...`) refuses what a web page of another site could send it without
a CORS preflight: a `text/plain` or form body, or any state-changing request carrying a foreign `Origin`. Tools
(no `Origin`, JSON or no body) keep working."""

from __future__ import annotations

import httpx

from waflow.emulator import EmulatorHandle

EVIL = "http://evil.example"


async def test_simple_cross_site_posts_are_refused(emulator: EmulatorHandle) -> None:
    base = emulator.base_url
    token = emulator.config.access_token
    async with httpx.AsyncClient(base_url=base) as c:
        before = (await c.get("/_emulator/clock")).json()["offset"]
        # what <form enctype="text/plain"> or fetch(..., {mode: "no-cors", body: "..."}) sends
        r = await c.post("/_emulator/clock", content=b'{"days": 7}',
                         headers={"Content-Type": "text/plain", "Origin": EVIL})
        assert r.status_code == 403
        r = await c.post("/_emulator/clock", content=b'{"days": 7}', headers={"Content-Type": "text/plain"})
        assert r.status_code == 415 and "application/json" in r.json()["error"]
        r = await c.post("/_emulator/tokens/rotate", content=b"expire_old=true",
                         headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert r.status_code == 415
        r = await c.post("/_emulator/tokens/expire", headers={"Origin": EVIL})  # bodyless, as no-cors fetch sends
        assert r.status_code == 403
        r = await c.post("/_emulator/users/34600111222/messages", content=b'{"type":"text","text":{"body":"x"}}',
                         headers={"Content-Type": "application/json", "Origin": "null"})
        assert r.status_code == 403
        assert (await c.get("/_emulator/clock")).json()["offset"] == before
        assert emulator.config.access_token == token
        assert emulator.sent() == [] and emulator.emulator.state.users.get("34600111222") is None


async def test_tools_and_the_same_origin_still_drive_it(emulator: EmulatorHandle) -> None:
    base = emulator.base_url
    async with httpx.AsyncClient(base_url=base) as c:
        before = (await c.get("/_emulator/clock")).json()["offset"]
        r = await c.post("/_emulator/clock", json={"days": 1})
        assert r.status_code == 200 and r.json()["offset"] == before + 86400
        same = base.replace("http://", "")
        r = await c.post("/_emulator/clock", json={"hours": 1}, headers={"Origin": f"http://{same}"})
        assert r.status_code == 200
        assert (await c.post("/_emulator/limits/reset")).status_code == 200  # bodyless, no Origin: a tool
        r = await c.put("/_emulator/faults", json={"server_error_rate": 0.0},
                        headers={"Content-Type": "application/json; charset=utf-8"})
        assert r.status_code == 200
