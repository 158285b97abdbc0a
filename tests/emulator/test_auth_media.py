"""Bearer tokens (104 / 190 / expiry / rotation) and media upload, URL, download, expiry, delete."""

from __future__ import annotations

import hashlib

import httpx

from waflow.emulator import EmulatorHandle

from .conftest import msg


async def test_token_errors(emulator: EmulatorHandle) -> None:
    url = f"{emulator.graph_url}/{emulator.config.phone_number_id}/messages"
    body = msg(type="text", text={"body": "x"})
    async with httpx.AsyncClient() as c:
        r = await c.post(url, json=body)
        assert r.status_code == 401
        assert r.json()["error"]["code"] == 104
        r = await c.post(url, json=body, headers={"Authorization": "Bearer not-a-token"})
        assert r.status_code == 401
        err = r.json()["error"]
        assert err["code"] == 190 and err["type"] == "OAuthException"
        assert r.headers["www-authenticate"].startswith('OAuth "Facebook Platform" "invalid_token"')
        r = await c.post(url, json=body, params={"access_token": emulator.config.access_token})
        assert r.status_code == 200

        old = emulator.config.access_token
        emulator.expire_token()
        r = await c.post(url, json=body, headers={"Authorization": f"Bearer {old}"})
        assert r.status_code == 401
        assert (r.json()["error"]["code"], r.json()["error"]["error_subcode"]) == (190, 463)
        assert old not in r.text

        new = emulator.rotate_token()
        r = await c.post(url, json=body, headers={"Authorization": f"Bearer {new}"})
        assert r.status_code == 200

        # the same through the control plane
        r = await c.post(f"{emulator.base_url}/_emulator/tokens/rotate")
        newer = r.json()["access_token"]
        r = await c.post(url, json=body, headers={"Authorization": f"Bearer {new}"})
        assert r.json()["error"]["code"] == 190
        r = await c.post(url, json=body, headers={"Authorization": f"Bearer {newer}"})
        assert r.status_code == 200


def test_secrets_stay_out_of_reprs(emulator: EmulatorHandle) -> None:
    cfg = emulator.config
    for text in (repr(cfg), str(cfg), repr(emulator), repr(emulator.emulator), repr(emulator.emulator.tokens)):
        assert cfg.access_token not in text
        assert cfg.app_secret not in text
        assert cfg.verify_token not in text


async def test_secrets_stay_out_of_control_plane_config(emulator: EmulatorHandle) -> None:
    async with httpx.AsyncClient() as c:
        text = (await c.get(f"{emulator.base_url}/_emulator/config")).text
    assert emulator.config.access_token not in text and emulator.config.app_secret not in text


JPEG = b"\xff\xd8\xff\xe0" + b"j" * 2000


async def upload(client: httpx.AsyncClient, phone: str, data: bytes, mime: str,
                 declared: str | None = None) -> httpx.Response:
    files = {"file": ("f.bin", data, mime), "messaging_product": (None, "whatsapp"),
             "type": (None, declared or mime)}
    return await client.post(f"/{phone}/media", files=files)


async def test_media_lifecycle(client: httpx.AsyncClient, emulator: EmulatorHandle) -> None:
    phone = emulator.config.phone_number_id
    r = await upload(client, phone, JPEG, "image/jpeg")
    assert r.status_code == 200, r.text
    media_id = r.json()["id"]
    assert media_id.isdigit()

    info = (await client.get(f"/{media_id}")).json()
    assert info["mime_type"] == "image/jpeg" and info["file_size"] == len(JPEG)
    assert info["sha256"] == hashlib.sha256(JPEG).hexdigest()
    assert info["id"] == media_id and info["messaging_product"] == "whatsapp"
    assert info["url"].startswith(emulator.base_url + "/lookaside/")

    dl = await client.get(info["url"])
    assert dl.status_code == 200 and dl.content == JPEG and dl.headers["content-type"] == "image/jpeg"
    async with httpx.AsyncClient() as anon:
        assert (await anon.get(info["url"])).status_code == 401  # the URL needs the token too

    emulator.advance_clock(minutes=6)  # URLs live 5 minutes
    assert (await client.get(info["url"])).status_code == 404
    fresh = (await client.get(f"/{media_id}")).json()["url"]
    assert (await client.get(fresh)).content == JPEG

    # a send by id is deliverable; the wrong phone_number_id is refused
    user = emulator.user("34600111222")
    await user.send_text("hi")
    r = await client.post(f"/{phone}/messages", json=msg(type="image", image={"id": media_id}))
    await user.wait_for_status(r.json()["messages"][0]["id"], "delivered")
    assert (await client.get(f"/{media_id}", params={"phone_number_id": "1"})).status_code == 400

    assert (await client.delete(f"/{media_id}")).json() == {"success": True}
    assert (await client.get(f"/{media_id}")).json()["error"]["error_subcode"] == 33
    assert (await client.get(fresh)).status_code == 404


async def test_media_checks(client: httpx.AsyncClient, emulator: EmulatorHandle) -> None:
    phone = emulator.config.phone_number_id
    r = await upload(client, phone, b"GIF89a", "image/gif")
    assert r.status_code == 400
    assert "Param file must be a file with one of the following types" in r.json()["error"]["message"]
    assert "image/gif" in r.json()["error"]["message"]
    r = await upload(client, phone, b"OggS", "audio/ogg; codecs=opus")  # parameterised MIME is refused
    assert r.status_code == 400
    r = await upload(client, phone, b"x" * (5 * 1024 * 1024 + 1), "image/png")
    assert r.status_code == 400 and r.json()["error"]["code"] == 131053
    r = await upload(client, phone, b"x" * 600_000, "image/webp")
    assert r.status_code == 400
    r = await client.post(f"/{phone}/media", content=b"not multipart", headers={"Content-Type": "text/plain"})
    assert r.status_code == 400
    r = await client.post(f"/{phone}/media", files={"file": ("a.pdf", b"%PDF", "application/pdf")})
    assert r.json()["error"]["message"] == "(#100) The parameter messaging_product is required."
    r = await upload(client, "42", JPEG, "image/jpeg")
    assert r.json()["error"]["error_subcode"] == 33
    ok = await upload(client, phone, b"%PDF-1.4", "application/pdf")
    assert ok.status_code == 200


async def test_unknown_media_id_fails_async(client: httpx.AsyncClient, emulator: EmulatorHandle) -> None:
    user = emulator.user("34600111222")
    await user.send_text("hi")
    r = await client.post(f"/{emulator.config.phone_number_id}/messages",
                          json=msg(type="document", document={"id": "123456"}))
    assert r.status_code == 200
    m = await user.wait_for_status(r.json()["messages"][0]["id"], "failed")
    assert m.errors[0]["code"] == 131053


async def test_user_media_is_downloadable(client: httpx.AsyncClient, emulator: EmulatorHandle) -> None:
    user = emulator.user("34600111222")
    await user.send_image(b"\xff\xd8user-photo", caption="look")
    media_id = user.sent()[-1]["image"]["id"]
    info = (await client.get(f"/{media_id}")).json()
    assert (await client.get(info["url"])).content == b"\xff\xd8user-photo"
