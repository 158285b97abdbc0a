"""Signature verification, config secrecy and the group-commit writer, without a server."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from waflow.providers.cloud import ParsedWebhook
from waflow.store.types import utcnow
from waflow.webhooks import InboxRequest, InboxWriter, SignatureOutcome, SignatureVerifier, WriteOutcome, sign
from waflow.webhooks.persist import WriteRequest
from waflow.webhooks.signature import verify_signature, verify_token_matches

from .helpers import PNID, PNID_B, SECRET, SECRET_B, TOKEN, TOKEN_B, config, wire


def test_verify_signature_over_raw_bytes() -> None:
    raw = b'{"a":"\\u00bf"}'
    assert verify_signature(raw, sign(raw, SECRET), SECRET)
    assert verify_signature(raw, sign(raw, SECRET).upper().replace("SHA256=", "sha256="), SECRET)
    assert not verify_signature('{"a":"¿"}'.encode(), sign(raw, SECRET), SECRET)  # re-encoded body
    assert not verify_signature(raw, None, SECRET)
    assert not verify_signature(raw, "sha1=" + "0" * 40, SECRET)


def test_verifier_routes_by_hint_and_falls_back() -> None:
    v = SignatureVerifier(config())
    body_a = wire({"entry": [{"id": "1", "changes": [{"value": {"metadata": {"phone_number_id": PNID}}}]}]})
    check = v.check(body_a, sign(body_a, SECRET))
    assert check.outcome is SignatureOutcome.OK
    assert v.app_serves(check.app or 0, {PNID}, set())
    other = v.check(body_a, sign(body_a, SECRET_B))  # signed by the other app: found, but it does not serve PNID
    assert other.outcome is SignatureOutcome.OK and not v.app_serves(other.app or 0, {PNID}, set())
    assert v.app_serves(other.app or 0, {PNID_B}, set())
    assert v.check(body_a, None).outcome is SignatureOutcome.MISSING
    assert v.check(body_a, "sha256=xyz").outcome is SignatureOutcome.MALFORMED
    assert v.check(body_a, sign(body_a, "nope")).outcome is SignatureOutcome.MISMATCH
    assert SECRET not in repr(v)


def test_verify_token_and_config_secrecy() -> None:
    cfg = config()
    assert verify_token_matches(cfg, TOKEN) and verify_token_matches(cfg, TOKEN_B)
    assert not verify_token_matches(cfg, "x") and not verify_token_matches(cfg, None)
    text = repr(cfg) + str(cfg) + cfg.model_dump_json()
    assert SECRET not in text and TOKEN not in text
    with pytest.raises(ValueError, match="app_secret"):
        type(cfg).model_validate({"numbers": {PNID: {"app_secret": "", "verify_token": "t"}}})


async def test_writer_group_commits_concurrent_requests() -> None:
    batches: list[int] = []

    async def commit(requests: Sequence[WriteRequest]) -> list[WriteOutcome]:
        batches.append(len(requests))
        await asyncio.sleep(0.01)  # an fsync
        return [WriteOutcome(new=1) for _ in requests]

    writer = InboxWriter(commit)
    req = InboxRequest(ParsedWebhook(), utcnow())
    outcomes = await asyncio.gather(*(writer.write(req) for _ in range(100)))
    assert len(outcomes) == 100 and all(o.new == 1 for o in outcomes)
    assert sum(batches) == 100 and len(batches) <= 3  # the first alone, then the rest together
    await writer.stop()


async def test_writer_isolates_a_failing_request() -> None:
    bad = InboxRequest(ParsedWebhook(), utcnow())

    async def commit(requests: Sequence[WriteRequest]) -> list[WriteOutcome]:
        await asyncio.sleep(0.001)
        if any(r is bad for r in requests):
            raise RuntimeError("constraint violated")
        return [WriteOutcome(new=1) for _ in requests]

    writer = InboxWriter(commit)
    good = [InboxRequest(ParsedWebhook(), utcnow()) for _ in range(5)]
    results = await asyncio.gather(*(writer.write(r) for r in [*good[:2], bad, *good[2:]]), return_exceptions=True)
    assert [isinstance(r, RuntimeError) for r in results] == [False, False, True, False, False, False]
    await writer.stop()


def test_status_payload_built_by_hand_equals_model_dump() -> None:
    """The parser builds status events without pydantic validation (hot path): same JSON, same event."""
    from waflow.canonical import StatusUpdate
    from waflow.providers.cloud import parse_webhook

    statuses = [
        {"id": "wamid.A", "status": "delivered", "timestamp": "1760000051", "recipient_id": "34600111222",
         "biz_opaque_callback_data": "wf:7", "conversation": {"id": "c1", "origin": {"type": "utility"}},
         "pricing": {"billable": False, "category": "utility"}},
        {"id": "wamid.B", "status": "failed", "timestamp": 1760000052, "recipient_user_id": "US.1",
         "errors": [{"code": 131026, "title": "Undeliverable", "error_data": {"details": "x"}, "href": "h"}]},
    ]
    body = {"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp", "metadata": {"phone_number_id": PNID}, "statuses": statuses}}]}]}
    for ev in parse_webhook(wire(body)).events:
        assert isinstance(ev.event, StatusUpdate)
        validated = StatusUpdate.model_validate(ev.event.model_dump())
        assert ev.event == validated
        assert {k: v for k, v in ev.payload.items() if k != "raw"} == validated.model_dump(mode="json")


async def test_write_gate_lets_foreground_writers_go_first(tmp_path: object) -> None:
    """On SQLite, writers of one process queue in-process; background ones after waiting foreground ones."""
    from pathlib import Path

    from waflow.store import Store
    from waflow.store.testing import sqlite_url

    store = Store.open(sqlite_url(Path(str(tmp_path))))
    await store.upgrade()
    order: list[str] = []

    async def write(name: str, background: bool) -> None:
        async with store.begin(background=background):
            order.append(name)
            await asyncio.sleep(0.01)

    try:
        async with store.begin():  # hold the lock while the others queue
            tasks = [asyncio.create_task(write("bg1", True)), asyncio.create_task(write("fg1", False))]
            await asyncio.sleep(0.01)
            tasks.append(asyncio.create_task(write("fg2", False)))
            await asyncio.sleep(0.01)
            assert store.writers_waiting
        await asyncio.gather(*tasks)
        assert order == ["fg1", "fg2", "bg1"]
    finally:
        await store.close()
