"""Partial bodies (issue 12): a malformed update is dead-lettered alone, with its place and reason,
while the valid updates beside it reach the inbox; a redelivered dead letter is counted, not stored
twice. Over the real HTTP endpoint, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import LargeBinary, Text, column, table

from waflow.store import Store
from waflow.store.migrate import run_downgrade
from waflow.store.types import JSONValue, UTCDateTime

from .helpers import PNID, PNID_B, WABA, dead_letter_rows, inbox_rows, post, serve

OBJ = "whatsapp_business_account"
META = {"display_phone_number": "15550783881", "phone_number_id": PNID}
ANA = {"profile": {"name": "Ana"}, "wa_id": "34600111222"}


def counter(result: str) -> float:
    return REGISTRY.get_sample_value("webhooks_received_total", {"result": result}) or 0.0


def text_msg(wamid: str, body: str = "hola") -> dict[str, Any]:
    return {"from": "34600111222", "id": wamid, "timestamp": "1760000000", "type": "text", "text": {"body": body}}


def status(wamid: str, st: str = "delivered", **extra: Any) -> dict[str, Any]:
    return {"id": wamid, "status": st, "timestamp": "1760000051", "recipient_id": "34600111222", **extra}


def messages_change(**value: Any) -> dict[str, Any]:
    return {"field": "messages", "value": {"messaging_product": "whatsapp", "metadata": META, **value}}


def body(*changes: dict[str, Any]) -> dict[str, Any]:
    return {"object": OBJ, "entry": [{"id": WABA, "changes": list(changes)}]}


@pytest.fixture
async def endpoint(store: Store) -> AsyncIterator[tuple[Store, str, httpx.AsyncClient]]:
    async with serve(store) as url, httpx.AsyncClient() as client:
        yield store, url, client


async def test_one_malformed_message_in_a_batch_is_dead_lettered_alone(
    endpoint: tuple[Store, str, httpx.AsyncClient],
) -> None:
    store, url, c = endpoint
    no_type = {"from": "34600111222", "id": "wamid.BAD", "timestamp": "1760000000", "text": {"body": "?"}}
    doc = body(
        messages_change(contacts=[ANA], messages=[text_msg("wamid.M0"), no_type, text_msg("wamid.M2")]),
        messages_change(statuses=[status("wamid.S1"), status("wamid.S2", "read")]),
    )
    ok, dead = counter("ok"), counter("dead_letter")
    r = await post(c, url, doc)
    assert r.status_code == 200
    keys = [row["dedup_key"] for row in await inbox_rows(store)]
    assert keys == ["msg:wamid.M0", "msg:wamid.M2", "st:wamid.S1:delivered", "st:wamid.S2:read"]
    [letter] = await dead_letter_rows(store)
    assert letter["place"] == "entry[0].changes[0].value.messages[1]"
    assert letter["reason"] == "entry[0].changes[0].value.messages[1].type: missing"
    assert letter["phone_number_id"] == PNID and letter["copies"] == 1
    # the fragment is kept as a webhook body of its own: its entry, change, metadata, contact, message
    assert json.loads(bytes(letter["body"])) == body(messages_change(contacts=[ANA], messages=[no_type]))
    assert letter["headers"]["x-hub-signature-256"].startswith("sha256=")
    assert (counter("ok"), counter("dead_letter")) == (ok + 1, dead + 1)


async def test_a_broken_change_beside_a_good_change(endpoint: tuple[Store, str, httpx.AsyncClient]) -> None:
    store, url, c = endpoint
    broken = {"field": "messages", "value": {"messaging_product": "whatsapp", "metadata": "106540352242922",
                                             "statuses": [status("wamid.LOST")]}}
    doc = body(broken, messages_change(contacts=[ANA], messages=[text_msg("wamid.GOOD")]))
    bad_status = status("wamid.S9")
    del bad_status["timestamp"]
    doc["entry"].append({"id": WABA, "changes": [messages_change(statuses=[bad_status, status("wamid.S8")])]})
    dead = counter("dead_letter")
    assert (await post(c, url, doc)).status_code == 200
    assert [row["dedup_key"] for row in await inbox_rows(store)] == ["msg:wamid.GOOD", "st:wamid.S8:delivered"]
    letters = await dead_letter_rows(store)
    assert [(d["place"], d["reason"]) for d in letters] == [
        ("entry[0].changes[0]", "entry[0].changes[0].value.metadata: expected an object, got a string"),
        ("entry[1].changes[0].value.statuses[0]", "entry[1].changes[0].value.statuses[0].timestamp: missing"),
    ]
    assert json.loads(bytes(letters[0]["body"]))["entry"][0]["changes"] == [broken]
    assert counter("dead_letter") == dead + 2


async def test_a_fragment_naming_another_apps_number_refuses_the_body(
    endpoint: tuple[Store, str, httpx.AsyncClient],
) -> None:
    store, url, c = endpoint
    other = {"field": "messages", "value": {"metadata": {"phone_number_id": PNID_B}, "statuses": "x"}}
    r = await post(c, url, body(messages_change(contacts=[ANA], messages=[text_msg("wamid.M")]), other))
    assert r.status_code == 403
    assert await inbox_rows(store) == [] and await dead_letter_rows(store) == []


@pytest.mark.parametrize(
    "error",
    [
        {"code": 131026, "title": "Message undeliverable", "error_data": {"details": "Receiver is incapable"}},
        {"code": 131026, "title": "Message undeliverable", "details": "Receiver is incapable"},
    ],
    ids=["error_data.details", "top-level details"],
)
async def test_error_details_are_kept_in_either_shape(
    endpoint: tuple[Store, str, httpx.AsyncClient], error: dict[str, Any]
) -> None:
    store, url, c = endpoint
    doc = body(messages_change(statuses=[status("wamid.F", "failed", errors=[error])]),
               messages_change(errors=[error]))
    assert (await post(c, url, doc)).status_code == 200
    failed, value_errors = await inbox_rows(store)
    assert failed["payload"]["errors"][0]["details"] == "Receiver is incapable"
    assert value_errors["kind"] == "error"
    assert value_errors["payload"]["errors"][0]["details"] == "Receiver is incapable"
    assert await dead_letter_rows(store) == []


async def test_a_redelivered_bad_body_is_counted_not_stored_again(
    endpoint: tuple[Store, str, httpx.AsyncClient],
) -> None:
    store, url, c = endpoint
    garbage = b'{"object":"whatsapp_business_account","entry":[{"id":"1","chan'
    dead = counter("dead_letter")
    for _ in range(3):
        assert (await post(c, url, garbage)).status_code == 200
    [letter] = await dead_letter_rows(store)
    assert bytes(letter["body"]) == garbage and letter["place"] is None
    assert letter["copies"] == 3 and letter["last_received_at"] >= letter["received_at"]
    assert counter("dead_letter") == dead + 3  # every receipt is counted

    # a partial body redelivered: its events are deduplicated as ever, its fragment counts copies
    no_type = {"from": "34600111222", "id": "wamid.BAD", "timestamp": "1760000000"}
    partial = body(messages_change(contacts=[ANA], messages=[text_msg("wamid.M0"), no_type]))
    for _ in range(3):
        assert (await post(c, url, partial)).status_code == 200
    assert [row["dedup_key"] for row in await inbox_rows(store)] == ["msg:wamid.M0"]
    first, fragment = await dead_letter_rows(store)
    assert first["id"] == letter["id"] and first["copies"] == 3
    assert fragment["place"] == "entry[0].changes[0].value.messages[1]" and fragment["copies"] == 3
    # another body that is bad in the same way at the same place is a dead letter of its own
    other = body(messages_change(contacts=[ANA], messages=[text_msg("wamid.M1"), {**no_type, "id": "wamid.BAD2"}]))
    assert (await post(c, url, other)).status_code == 200
    assert [d["copies"] for d in await dead_letter_rows(store)] == [3, 3, 1]


async def test_upgrade_to_0005_counts_the_copies_already_stored(store: Store) -> None:
    async with store.engine.connect() as conn:
        await conn.run_sync(run_downgrade, "0004")
        await conn.commit()
    # the table as revision 0004 had it
    old = table("dead_letters", column("received_at", UTCDateTime()), column("reason", Text()),
                column("headers", JSONValue), column("body", LargeBinary()))
    at = datetime(2026, 1, 1, 10, tzinfo=UTC)
    rows = [(at, b"{"), (at + timedelta(minutes=5), b"["), (at + timedelta(hours=1), b"{")]
    async with store.engine.begin() as conn:
        for received_at, raw in rows:
            await conn.execute(old.insert().values(received_at=received_at, reason="bad", headers={}, body=raw))
    await store.upgrade()
    letters = await dead_letter_rows(store)
    assert [bytes(d["body"]) for d in letters] == [b"{", b"[", b"{"]  # no row lost
    assert [d["copies"] for d in letters[:2]] == [2, 1]
    assert letters[0]["last_received_at"] == letters[2]["received_at"]
    assert letters[2]["body_sha256"] is None  # the later duplicate is kept as it was, not merged
    async with store.begin() as conn:
        again = await store.dead_letters.add(conn, reason="bad", body=b"{")
        assert again == letters[0]["id"]
        record = await store.dead_letters.get(conn, again)
        assert record is not None and record.copies == 3


async def test_a_message_nested_deeper_than_orjson_writes_is_stored(
    endpoint: tuple[Store, str, httpx.AsyncClient],
) -> None:
    """orjson stops at 254 levels; such a message (an unknown field kept whole) is still stored, never a 500
    that Meta would retry for days."""
    store, url, c = endpoint
    deep: Any = "leaf"
    for _ in range(300):
        deep = {"x": deep}
    msg = {**text_msg("wamid.DEEP"), "unknown_extension": deep}
    r = await post(c, url, json.dumps(body(messages_change(contacts=[ANA], messages=[msg]))).encode())
    assert r.status_code == 200
    assert [row["provider_message_id"] for row in await inbox_rows(store)] == ["wamid.DEEP"]
