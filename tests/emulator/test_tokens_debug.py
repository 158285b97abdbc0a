"""Token kinds, `debug_token`, `/oauth/access_token`, expiry on the emulator's clock, scopes, and their errors."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from waflow.emulator import EmulatorConfig, EmulatorHandle, TokenSeed, run_emulator

from .conftest import msg

MESSAGING = "whatsapp_business_messaging"
MANAGEMENT = "whatsapp_business_management"
DAY = 86400


def app_token(emu: EmulatorHandle, secret: str | None = None) -> str:
    return f"{emu.config.app_id}|{secret if secret is not None else emu.config.app_secret}"


async def debug(c: httpx.AsyncClient, emu: EmulatorHandle, token: str, viewer: str | None = None) -> httpx.Response:
    return await c.get(f"{emu.graph_url}/debug_token",
                       params={"input_token": token, "access_token": viewer or app_token(emu)})


async def send(c: httpx.AsyncClient, emu: EmulatorHandle, token: str) -> httpx.Response:
    return await c.post(f"{emu.graph_url}/{emu.config.phone_number_id}/messages",
                        json=msg(type="template", template={"name": "hello", "language": {"code": "en_US"}}),
                        headers={"Authorization": f"Bearer {token}"})


async def oauth(c: httpx.AsyncClient, emu: EmulatorHandle, **params: str) -> httpx.Response:
    return await c.get(f"{emu.graph_url}/oauth/access_token", params=params)


@pytest.fixture
async def emu() -> Any:
    async with run_emulator(EmulatorConfig(app_secret="the-app-secret", verify_token="vt")) as handle:
        handle.add_template("hello", "Hello!")
        yield handle


async def test_debug_token_of_a_system_user_token(emu: EmulatorHandle) -> None:
    async with httpx.AsyncClient() as c:
        r = await debug(c, emu, emu.config.access_token)
    assert r.status_code == 200
    data = r.json()["data"]
    assert data["type"] == "SYSTEM_USER" and data["is_valid"] is True and data["expires_at"] == 0
    assert data["app_id"] == emu.config.app_id and data["application"] == emu.config.app_name
    assert {MESSAGING, MANAGEMENT} <= set(data["scopes"])
    assert {g["scope"]: g["target_ids"] for g in data["granular_scopes"]} == {
        MESSAGING: [emu.config.waba_id], MANAGEMENT: [emu.config.waba_id]}
    assert "error" not in data


async def test_a_temporary_user_token_expires_on_the_clock_also_on_sends(emu: EmulatorHandle) -> None:
    token = emu.issue_token("USER")  # the dashboard's temporary token: 24 h
    now = emu.emulator.clock.now()
    async with httpx.AsyncClient() as c:
        data = (await debug(c, emu, token)).json()["data"]
        assert data["type"] == "USER" and data["is_valid"] is True
        assert abs(data["expires_at"] - (now + DAY)) <= 2
        assert (await send(c, emu, token)).status_code == 200

        emu.advance_clock(hours=25)
        data = (await debug(c, emu, token)).json()["data"]
        assert data["is_valid"] is False and data["error"]["code"] == 190 and data["error"]["subcode"] == 463
        r = await send(c, emu, token)
        assert r.status_code == 401
        err = r.json()["error"]
        assert (err["code"], err["error_subcode"]) == (190, 463) and "expired" in err["message"]
        assert token not in r.text


async def test_an_unknown_token_is_190_without_a_subcode(emu: EmulatorHandle) -> None:
    async with httpx.AsyncClient() as c:
        data = (await debug(c, emu, "EAAnot-a-token")).json()["data"]
        assert data["is_valid"] is False and data["error"]["code"] == 190 and "subcode" not in data["error"]
        r = await send(c, emu, "EAAnot-a-token")
        assert r.status_code == 401 and r.json()["error"]["code"] == 190
        assert "error_subcode" not in r.json()["error"]


async def test_a_revoked_token_is_190_460(emu: EmulatorHandle) -> None:
    token = emu.issue_token("SYSTEM_USER")
    emu.revoke_token(token)
    async with httpx.AsyncClient() as c:
        r = await send(c, emu, token)
        assert (r.json()["error"]["code"], r.json()["error"]["error_subcode"]) == (190, 460)
        data = (await debug(c, emu, token)).json()["data"]
        assert data["is_valid"] is False and data["error"]["subcode"] == 460


async def test_debug_token_refuses_a_wrong_app_token(emu: EmulatorHandle) -> None:
    async with httpx.AsyncClient() as c:
        r = await debug(c, emu, emu.config.access_token, viewer=app_token(emu, "wrong-secret"))
        assert r.status_code == 400
        err = r.json()["error"]
        assert err["code"] == 190 and "error_subcode" not in err and "wrong-secret" not in r.text
        r = await c.get(f"{emu.graph_url}/debug_token", params={"input_token": emu.config.access_token})
        assert r.status_code == 401 and r.json()["error"]["code"] == 104


async def test_client_credentials_give_an_app_token(emu: EmulatorHandle) -> None:
    cfg = emu.config
    async with httpx.AsyncClient() as c:
        r = await oauth(c, emu, grant_type="client_credentials", client_id=cfg.app_id, client_secret=cfg.app_secret)
        assert r.status_code == 200 and r.json()["token_type"] == "bearer"
        token = r.json()["access_token"]
        assert token.startswith(f"{cfg.app_id}|")
        assert (await debug(c, emu, cfg.access_token, viewer=token)).json()["data"]["is_valid"] is True
        assert (await debug(c, emu, token)).json()["data"]["type"] == "APP"
        # an app token carries no WhatsApp permission
        r = await send(c, emu, token)
        assert r.status_code == 403 and r.json()["error"]["code"] == 10

        r = await oauth(c, emu, grant_type="client_credentials", client_id=cfg.app_id, client_secret="nope")
        assert r.status_code == 400 and r.json()["error"]["code"] == 1 and "nope" not in r.text
        r = await oauth(c, emu, grant_type="client_credentials", client_id="999", client_secret=cfg.app_secret)
        assert r.status_code == 400 and r.json()["error"]["code"] == 101


async def test_fb_exchange_token_gives_a_long_lived_user_token(emu: EmulatorHandle) -> None:
    cfg = emu.config
    short = emu.issue_token("USER", expires_in=2 * 3600, scopes=[MESSAGING, MANAGEMENT])
    async with httpx.AsyncClient() as c:
        r = await oauth(c, emu, grant_type="fb_exchange_token", client_id=cfg.app_id, client_secret=cfg.app_secret,
                        fb_exchange_token=short)
        assert r.status_code == 200, r.text
        body = r.json()
        long_lived = body["access_token"]
        assert long_lived != short and body["token_type"] == "bearer"
        assert abs(body["expires_in"] - 60 * DAY) <= 2
        data = (await debug(c, emu, long_lived)).json()["data"]
        assert data["type"] == "USER" and data["is_valid"] is True
        assert abs(data["expires_at"] - (emu.emulator.clock.now() + 60 * DAY)) <= 2
        assert set(data["scopes"]) == {MESSAGING, MANAGEMENT}
        emu.advance_clock(days=30)  # the short-lived one is long gone, the new one still works
        assert (await send(c, emu, short)).json()["error"]["error_subcode"] == 463
        assert (await send(c, emu, long_lived)).status_code == 200


@pytest.mark.parametrize(
    ("which", "code", "subcode"),
    [("system", 100, None), ("expired", 190, 463), ("unknown", 190, None), ("secret", 1, None)],
)
async def test_fb_exchange_token_errors(emu: EmulatorHandle, which: str, code: int, subcode: int | None) -> None:
    cfg = emu.config
    token = {"system": cfg.access_token, "unknown": "EAAnope"}.get(which) or emu.issue_token("USER")
    if which == "expired":
        emu.advance_clock(days=2)
    secret = "wrong" if which == "secret" else cfg.app_secret
    async with httpx.AsyncClient() as c:
        r = await oauth(c, emu, grant_type="fb_exchange_token", client_id=cfg.app_id, client_secret=secret,
                        fb_exchange_token=token)
    assert r.status_code in (400, 401)
    err = r.json()["error"]
    assert err["code"] == code and err.get("error_subcode") == subcode
    assert token not in r.text


async def test_scopes_and_targets_are_enforced(emu: EmulatorHandle) -> None:
    cfg = emu.config
    no_messaging = emu.issue_token("SYSTEM_USER", scopes=[MANAGEMENT])
    no_management = emu.issue_token("SYSTEM_USER", scopes=[MESSAGING])
    other_waba = emu.issue_token("SYSTEM_USER", targets=["999999999"])
    async with httpx.AsyncClient() as c:
        r = await send(c, emu, no_messaging)
        assert r.status_code == 403 and r.json()["error"]["code"] == 10 and MESSAGING in r.json()["error"]["message"]
        assert (await send(c, emu, no_management)).status_code == 200
        templates = f"{emu.graph_url}/{cfg.waba_id}/message_templates"
        r = await c.get(templates, headers={"Authorization": f"Bearer {no_management}"})
        assert r.status_code == 403 and r.json()["error"]["code"] == 10 and MANAGEMENT in r.json()["error"]["message"]
        assert (await c.get(templates, headers={"Authorization": f"Bearer {no_messaging}"})).status_code == 200
        r = await send(c, emu, other_waba)
        assert r.status_code == 403 and r.json()["error"]["code"] == 200


async def test_the_control_plane_issues_revokes_and_moves_time(emu: EmulatorHandle) -> None:
    base = f"{emu.base_url}/_emulator"
    async with httpx.AsyncClient() as c:
        r = await c.post(f"{base}/tokens/issue", json={"type": "USER", "expires_in_s": 3600})
        assert r.status_code == 200
        token, expires_at = r.json()["access_token"], r.json()["expires_at"]
        assert r.json()["type"] == "USER" and expires_at > 0
        assert (await send(c, emu, token)).status_code == 200
        await c.post(f"{base}/clock", json={"hours": 2})
        assert (await send(c, emu, token)).json()["error"]["error_subcode"] == 463
        r = await c.post(f"{base}/tokens/issue", json={"type": "bogus"})
        assert r.status_code == 400 and "SYSTEM_USER" in r.json()["error"]
        other = (await c.post(f"{base}/tokens/issue", json={})).json()["access_token"]
        await c.post(f"{base}/tokens/revoke", json={"token": other})
        assert (await send(c, emu, other)).json()["error"]["error_subcode"] == 460
        config_text = (await c.get(f"{base}/config")).text
    assert token not in config_text and other not in config_text


async def test_seeded_tokens_and_secrets_out_of_reprs() -> None:
    seed = TokenSeed(token="EAAseeded-user-token", type="USER", expires_in_s=3600, scopes=[MESSAGING])
    cfg = EmulatorConfig(issued_tokens=[seed])
    async with run_emulator(cfg) as emu, httpx.AsyncClient() as c:
        data = (await debug(c, emu, seed.token)).json()["data"]
        assert data["type"] == "USER" and data["scopes"] == [MESSAGING]
        for text in (repr(cfg), repr(emu.emulator.tokens), repr(emu.token_record(seed.token))):
            assert seed.token not in text and cfg.app_secret not in text
        config_text = (await c.get(f"{emu.base_url}/_emulator/config")).text
        assert seed.token not in config_text
