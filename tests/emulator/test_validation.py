"""Meta's validation: each rule answers its code, HTTP status and details; bad input never 500s."""

from __future__ import annotations

import random
from typing import Any

import httpx
import pytest

from waflow.emulator import EmulatorHandle

from .conftest import msg


def buttons(*titles: str, ids: list[str] | None = None) -> dict[str, Any]:
    ids = ids or [f"id{i}" for i in range(len(titles))]
    return {"type": "interactive", "interactive": {"type": "button", "body": {"text": "b"}, "action": {
        "buttons": [{"type": "reply", "reply": {"id": i, "title": t}} for i, t in zip(ids, titles, strict=True)]}}}


def a_list(rows_per_section: list[int], **row: Any) -> dict[str, Any]:
    sections = [{"title": f"S{s}", "rows": [{"id": f"{s}-{r}", "title": "Row", **row} for r in range(n)]}
                for s, n in enumerate(rows_per_section)]
    return {"type": "interactive", "interactive": {"type": "list", "body": {"text": "b"},
                                                   "action": {"button": "Pick", "sections": sections}}}


def interactive(**kw: Any) -> dict[str, Any]:
    base = {"type": "button", "body": {"text": "b"},
            "action": {"buttons": [{"type": "reply", "reply": {"id": "a", "title": "A"}}]}}
    return {"type": "interactive", "interactive": base | kw}


CASES: list[tuple[str, dict[str, Any], int, int, str]] = [
    ("4 buttons", buttons("a", "b", "c", "d"), 131009, 400, "Invalid buttons count. Min: 1, Max: 3"),
    ("0 buttons", buttons(), 131009, 400, "Invalid buttons count"),
    ("title 21", buttons("x" * 21), 131009, 400, "Button title length invalid. Min length: 1, Max length: 20"),
    ("title empty", buttons(""), 131009, 400, "Button title length invalid"),
    ("titles dup", buttons("Yes", "yes"), 131009, 400, "Button title is not unique"),
    ("ids dup", buttons("A", "B", ids=["x", "x"]), 131009, 400, "Button id is not unique"),
    ("id 257", buttons("A", ids=["i" * 257]), 131009, 400, "Button id length invalid"),
    ("11 rows", a_list([6, 5]), 131009, 400, "Invalid number of rows. Min: 1, Max: 10"),
    ("row title 25", a_list([1], title="t" * 25), 131009, 400,
     "Row title length invalid. Min length: 1, Max length: 24"),
    ("row desc 73", a_list([1], description="d" * 73), 131009, 400, "Row description length invalid"),
    ("11 sections", a_list([1] * 11), 131009, 400, "Invalid number of sections"),
    ("body 1025", interactive(body={"text": "b" * 1025}), 131009, 400, "Body text length invalid. Min length: 1, "
                                                                      "Max length: 1024"),
    ("footer 61", interactive(footer={"text": "f" * 61}), 131009, 400, "Footer text length invalid"),
    ("header 61", interactive(header={"type": "text", "text": "h" * 61}), 131009, 400, "Header text length invalid"),
    ("no body", {"type": "interactive", "interactive": {"type": "button", "action": {"buttons": []}}}, 131008, 400,
     "interactive.body"),
    ("bad itype", interactive(type="poll"), 131009, 400, "not supported"),
    ("text 4097", {"type": "text", "text": {"body": "x" * 4097}}, 131009, 400,
     "Message text length invalid. Min length: 1, Max length: 4096"),
    ("text empty", {"type": "text", "text": {"body": ""}}, 131009, 400, "Message text length invalid"),
    ("text missing", {"type": "text", "text": {}}, 131008, 400, "text.body"),
    ("text object missing", {"type": "text"}, 131008, 400, "Parameter 'text' is required"),
    ("caption 1025", {"type": "image", "image": {"link": "https://x.io/a.jpg", "caption": "c" * 1025}}, 131009, 400,
     "Caption length invalid"),
    ("id and link", {"type": "image", "image": {"link": "https://x.io/a.jpg", "id": "1"}}, 131009, 400,
     "either 'id' or 'link'"),
    ("neither id nor link", {"type": "video", "video": {"caption": "x"}}, 131008, 400, "video.id"),
    ("bad link", {"type": "document", "document": {"link": "ftp:/x"}}, 131009, 400, "document.link"),
    ("audio caption", {"type": "audio", "audio": {"link": "https://x.io/a.ogg", "caption": "c"}}, 131009, 400,
     "caption"),
    ("latitude 91", {"type": "location", "location": {"latitude": 91, "longitude": 0}}, 131009, 400, "latitude"),
    ("contacts no name", {"type": "contacts", "contacts": [{"phones": []}]}, 131008, 400, "contacts[0].name"),
    ("reaction no id", {"type": "reaction", "reaction": {"emoji": "x"}}, 131008, 400, "reaction.message_id"),
    ("unknown type", {"type": "hologram", "hologram": {}}, 131051, 400, "hologram"),
    ("cta text 21", interactive(type="cta_url", action={"name": "cta_url", "parameters": {
        "display_text": "d" * 21, "url": "https://x.io"}}), 131009, 400, "Button display text length invalid"),
    ("flow both ids", interactive(type="flow", action={"name": "flow", "parameters": {
        "flow_message_version": "3", "flow_id": "1", "flow_name": "n", "flow_cta": "Go"}}), 131009, 400,
     "flow_id or flow_name"),
    ("callback 513", {"type": "text", "text": {"body": "x"}, "biz_opaque_callback_data": "c" * 513}, 131009, 400,
     "biz_opaque_callback_data length invalid"),
    ("wrong type text", {"type": "text", "text": "hello"}, 100, 400, "Param text must be a JSON object"),
    ("template no name", {"type": "template", "template": {"language": {"code": "en_US"}}}, 131008, 400,
     "template.name"),
]


@pytest.mark.parametrize(("name", "body", "code", "status", "details"), CASES, ids=[c[0] for c in CASES])
async def test_validation_errors(name: str, body: dict[str, Any], code: int, status: int, details: str,
                                 client: httpx.AsyncClient, emulator: EmulatorHandle) -> None:
    r = await client.post(f"/{emulator.config.phone_number_id}/messages", json=msg(**body))
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["code"] == code
    assert err["message"].startswith(f"(#{code}) ")
    assert err["type"] == "OAuthException"
    assert err["fbtrace_id"]
    assert err["error_data"]["messaging_product"] == "whatsapp"
    assert details in err["error_data"]["details"]
    assert emulator.sent() == []


async def test_envelope_errors(client: httpx.AsyncClient, emulator: EmulatorHandle) -> None:
    phone = emulator.config.phone_number_id
    r = await client.post(f"/{phone}/messages", json={"to": "34600111222", "text": {"body": "x"}})
    assert (r.status_code, r.json()["error"]["code"]) == (400, 100)
    assert "messaging_product" in r.json()["error"]["message"]
    r = await client.post(f"/{phone}/messages", json={"messaging_product": "whatsapp", "text": {"body": "x"}})
    assert r.json()["error"]["message"] == "(#100) The parameter to is required."
    r = await client.post(f"/{phone}/messages", json=msg(to="15550783881", type="text", text={"body": "x"}))
    assert r.json()["error"]["code"] == 131021
    r = await client.post("/999999/messages", json=msg(type="text", text={"body": "x"}))
    err = r.json()["error"]
    assert (r.status_code, err["code"], err["error_subcode"], err["type"]) == (400, 100, 33, "GraphMethodException")
    assert "Object with ID '999999' does not exist" in err["message"]


BAD_BODIES: list[bytes] = [
    b"", b"{", b"null", b"[]", b"42", b'"text"', b"\xff\xfe\x00", b'{"messaging_product": 5}',
    b'{"messaging_product":"whatsapp","to":12345,"type":"text","text":{"body":"x"}}',
    b'{"messaging_product":"whatsapp","to":"abc","type":"text","text":{"body":"x"}}',
    b'{"messaging_product":"whatsapp","to":"34600111222","type":["text"]}',
    b'{"messaging_product":"whatsapp","to":"34600111222","type":"interactive","interactive":[]}',
    b'{"messaging_product":"whatsapp","to":"34600111222","type":"interactive","interactive":{"type":"list",'
    b'"body":{"text":"x"},"action":{"button":"b","sections":"nope"}}}',
    b'{"messaging_product":"whatsapp","to":"34600111222","type":"template","template":{"name":"x",'
    b'"language":{"code":"en"},"components":[{"type":"body","parameters":[{"type":"text","text":7}]}]}}',
    b'{"messaging_product":"whatsapp","to":"34600111222","type":"text","text":{"body":"x"},"context":"x"}',
    b'{"messaging_product":"whatsapp","status":"read"}',
    b'{"messaging_product":"whatsapp","to":"34600111222","type":"location","location":{"latitude":null,'
    b'"longitude":true}}',
]


@pytest.mark.parametrize("raw", BAD_BODIES)
async def test_bad_input_never_500s(raw: bytes, client: httpx.AsyncClient, emulator: EmulatorHandle) -> None:
    r = await client.post(f"/{emulator.config.phone_number_id}/messages", content=raw,
                          headers={"Content-Type": "application/json"})
    assert 400 <= r.status_code < 500, r.text
    assert isinstance(r.json()["error"]["code"], int)


async def test_fuzzed_bodies_never_500(client: httpx.AsyncClient, emulator: EmulatorHandle) -> None:
    rng = random.Random(39)
    atoms: list[Any] = [None, True, 0, -1.5, "", "x" * 5000, [], {}, ["a"], {"a": 1}, "https://x.io"]
    keys = ["messaging_product", "to", "type", "text", "image", "interactive", "template", "context", "body",
            "action", "buttons", "sections", "rows", "name", "language", "components", "parameters", "id", "link"]

    def rand(depth: int) -> Any:
        if depth > 3 or rng.random() < 0.3:
            return rng.choice(atoms)
        if rng.random() < 0.5:
            return [rand(depth + 1) for _ in range(rng.randint(0, 3))]
        return {rng.choice(keys): rand(depth + 1) for _ in range(rng.randint(0, 4))}

    for _ in range(300):
        body = {"messaging_product": "whatsapp", "to": "34600111222",
                "type": rng.choice(["text", "image", "interactive", "template", "location", "contacts", "reaction"])}
        body[body["type"]] = rand(0)
        r = await client.post(f"/{emulator.config.phone_number_id}/messages", json=body)
        assert r.status_code in (200, 400, 404), r.text


async def test_oversize_body(client: httpx.AsyncClient, emulator: EmulatorHandle) -> None:
    big = b'{"messaging_product":"whatsapp","to":"1","text":{"body":"' + b"x" * (4 * 1024 * 1024) + b'"}}'
    r = await client.post(f"/{emulator.config.phone_number_id}/messages", content=big)
    assert r.status_code == 413
    assert r.json()["error"]["code"] == 100


async def test_wrong_method_and_unknown_paths(client: httpx.AsyncClient, emulator: EmulatorHandle) -> None:
    for method, path in [("GET", f"/{emulator.config.phone_number_id}/messages"), ("GET", "/123/unknown"),
                         ("DELETE", "/nothing"), ("GET", "/a/b/c"), ("PUT", f"/{emulator.config.waba_id}")]:
        r = await client.request(method, path)
        assert r.status_code == 400, (method, path, r.text)
        assert r.json()["error"]["code"] == 100
