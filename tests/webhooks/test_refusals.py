"""Bad signatures, bad bodies, huge bodies: refused or dead-lettered, never processed."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import AsyncIterator

import httpx
import pytest
from prometheus_client import REGISTRY

from waflow.store import Store

from .helpers import (
    PNID,
    PNID_B,
    SECRET,
    SECRET_B,
    WABA,
    WABA_B,
    config,
    dead_letter_rows,
    inbox_rows,
    post,
    serve,
    signature,
    wire,
)


def text_doc(wamid: str = "wamid.T1", pnid: str = PNID, waba: str = WABA) -> dict[str, object]:
    return {"object": "whatsapp_business_account", "entry": [{"id": waba, "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp", "metadata": {"display_phone_number": "1", "phone_number_id": pnid},
        "contacts": [{"profile": {"name": "Ana"}, "wa_id": "34600111222"}],
        "messages": [{"from": "34600111222", "id": wamid, "timestamp": "1760000000", "type": "text",
                      "text": {"body": "hola"}}]}}]}]}


def counter(result: str) -> float:
    return REGISTRY.get_sample_value("webhooks_received_total", {"result": result}) or 0.0


@pytest.fixture
async def endpoint(store: Store) -> AsyncIterator[tuple[Store, str, httpx.AsyncClient]]:
    async with serve(store) as url, httpx.AsyncClient() as client:
        yield store, url, client


async def test_missing_signature_401(endpoint: tuple[Store, str, httpx.AsyncClient]) -> None:
    store, url, c = endpoint
    before = counter("missing_signature")
    r = await post(c, url, text_doc(), secret=None)
    assert r.status_code == 401
    assert counter("missing_signature") == before + 1
    assert await inbox_rows(store) == []


async def test_sha1_only_is_missing(endpoint: tuple[Store, str, httpx.AsyncClient]) -> None:
    store, url, c = endpoint
    raw = wire(text_doc())
    sha1 = "sha1=" + hmac.new(SECRET.encode(), raw, hashlib.sha1).hexdigest()
    r = await c.post(url, content=raw, headers={"X-Hub-Signature": sha1, "Content-Type": "application/json"})
    assert r.status_code == 401
    r = await c.post(url, content=raw, headers={"X-Hub-Signature-256": sha1})
    assert r.status_code == 403
    assert await inbox_rows(store) == []


@pytest.mark.parametrize("kind", ["wrong_secret", "other_numbers_secret", "modified_body", "garbage_header"])
async def test_bad_signature_403(endpoint: tuple[Store, str, httpx.AsyncClient], kind: str) -> None:
    store, url, c = endpoint
    raw = wire(text_doc())
    if kind == "wrong_secret":
        header = signature(raw, "not-the-secret")
    elif kind == "other_numbers_secret":
        header = signature(raw, SECRET_B)  # a real app secret of this deployment, but not this number's
    elif kind == "modified_body":
        header = signature(raw, SECRET)
        raw = raw.replace(b"hola", b"HOLA")
    else:
        header = "sha256=zz" + "0" * 62
    before = counter("bad_signature") + counter("wrong_app") + counter("malformed_signature")
    r = await c.post(url, content=raw, headers={"X-Hub-Signature-256": header})
    assert r.status_code == 403
    assert counter("bad_signature") + counter("wrong_app") + counter("malformed_signature") == before + 1
    assert await inbox_rows(store) == [] and await dead_letter_rows(store) == []


async def test_second_app_number_is_accepted_with_its_own_secret(
    endpoint: tuple[Store, str, httpx.AsyncClient],
) -> None:
    store, url, c = endpoint
    assert (await post(c, url, text_doc("wamid.B1", PNID_B, WABA_B), secret=SECRET_B)).status_code == 200
    assert (await post(c, url, text_doc("wamid.B2", PNID_B, WABA_B), secret=SECRET)).status_code == 403
    assert [r["provider_message_id"] for r in await inbox_rows(store)] == ["wamid.B1"]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"object":"whatsapp_business_account","entry":[{"id":"1","chan', "not valid JSON"),
        (b"\x00\xff\xfegarbage", "not valid JSON"),
        (b"", "empty"),
        (b'{"object":"page","entry":[]}', "expected 'whatsapp_business_account'"),
        # (a malformed update inside a valid envelope is dead-lettered alone: test_partial_bodies.py)
    ],
)
async def test_unparseable_signed_body_is_a_dead_letter(
    endpoint: tuple[Store, str, httpx.AsyncClient], body: bytes, reason: str
) -> None:
    store, url, c = endpoint
    before = counter("dead_letter")
    r = await post(c, url, body)
    assert r.status_code == 200
    assert counter("dead_letter") == before + 1
    [dead] = await dead_letter_rows(store)
    assert bytes(dead["body"]) == body and reason in dead["reason"]
    assert dead["headers"]["x-hub-signature-256"].startswith("sha256=")
    assert await inbox_rows(store) == []


async def test_huge_body_413(endpoint: tuple[Store, str, httpx.AsyncClient]) -> None:
    store, url, c = endpoint
    huge = b'{"object":"whatsapp_business_account","entry":[],"pad":"' + b"x" * (3 * 1024 * 1024) + b'"}'
    before = counter("too_large")
    r = await post(c, url, huge)
    assert r.status_code == 413
    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: refused once the limit is crossed
        for _ in range(40):
            yield b"x" * 100_000
    r = await c.post(url, content=chunks(), headers={"X-Hub-Signature-256": "sha256=" + "0" * 64})
    assert r.status_code == 413
    assert counter("too_large") == before + 2
    assert await inbox_rows(store) == [] and await dead_letter_rows(store) == []


async def test_configurable_limit_and_exact_limit(store: Store) -> None:
    raw = wire(text_doc())
    async with serve(store, config(max_body_bytes=len(raw))) as url, httpx.AsyncClient() as c:
        assert (await post(c, url, raw)).status_code == 200
        assert (await post(c, url, raw + b" ")).status_code == 413


async def test_secrets_never_in_logs_or_reprs(
    endpoint: tuple[Store, str, httpx.AsyncClient], caplog: pytest.LogCaptureFixture
) -> None:
    _, url, c = endpoint
    caplog.set_level("DEBUG")
    await post(c, url, text_doc(), secret="nope")
    await post(c, url, b"garbage")
    text = caplog.text + repr(config()) + str(config().model_dump())
    assert SECRET not in text and SECRET_B not in text and "hola" not in text
