"""`StatusProcessor`: statuses handed over in memory and found by the inbox scan, each applied exactly
once; `status_from_payload`; the receiver's inline fallback (a failed inline application stores the
events pending instead of answering 500)."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from pydantic import ValidationError
from sqlalchemy import func, select

from waflow.canonical import DeliveryStatus, ErrorDetail, StatusUpdate
from waflow.providers.cloud import parse_webhook
from waflow.store import Store
from waflow.store.tables import inbound_events, status_events
from waflow.store.types import utcnow
from waflow.webhooks.app import WebhookReceiver
from waflow.webhooks.persist import InboxRequest, PendingStatus, write_requests
from waflow.webhooks.status import StatusProcessor, status_from_payload

from .helpers import PNID, WABA, config, signature, wire

TS = 1760000000


def st(wamid: str, status: str, offset: int = 0, **extra: Any) -> dict[str, Any]:
    return {"id": wamid, "status": status, "timestamp": str(TS + offset), "recipient_id": "34600111222", **extra}


def body(*statuses: dict[str, Any]) -> bytes:
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550783881", "phone_number_id": PNID},
        "statuses": list(statuses),
    }
    return wire(
        {
            "object": "whatsapp_business_account",
            "entry": [{"id": WABA, "changes": [{"field": "messages", "value": value}]}],
        }
    )


def chain(wamid: str) -> list[dict[str, Any]]:
    return [st(wamid, "sent", 1), st(wamid, "delivered", 2), st(wamid, "read", 3)]


async def seed(store: Store, *wamids: str) -> dict[str, int]:
    """Outbound messages the provider accepted with these wamids; their outbox ids."""
    from waflow.canonical import OutboundMessage

    ids = {}
    async with store.begin() as conn:
        for wamid in wamids:
            oid = await store.outbox.enqueue(
                conn,
                PNID,
                OutboundMessage(to="34600111222", type="text", content={"body": "hi"}),
                contact_key="34600111222",
                business_initiated=False,
            )
            await store.outbox.record_accepted(conn, oid, wamid)
            ids[wamid] = oid
    return ids


async def write(store: Store, raw: bytes) -> list[PendingStatus]:
    """Store a webhook's events as the endpoint does with statuses left pending; the statuses to offer."""
    async with store.begin() as conn:
        [outcome] = await write_requests(
            store, conn, [InboxRequest(parse_webhook(raw), utcnow())], apply_statuses=False
        )
    return outcome.statuses


async def history_count(store: Store) -> int:
    async with store.read() as conn:
        return int((await conn.execute(select(func.count()).select_from(status_events))).scalar_one())


async def inbox_states(store: Store) -> dict[str, int]:
    async with store.read() as conn:
        rows = await conn.execute(
            select(inbound_events.c.state, func.count())
            .where(inbound_events.c.kind == "status")
            .group_by(inbound_events.c.state)
        )
        return {r[0]: int(r[1]) for r in rows}


async def message_status(store: Store, oid: int) -> DeliveryStatus:
    async with store.read() as conn:
        record = await store.outbox.get(conn, oid)
    assert record is not None
    return record.status


async def idle(proc: StatusProcessor) -> StatusProcessor:
    """Run the processor's start-up scan (an empty inbox), so that what follows is what the test offers."""
    assert await proc.run_once() == 0
    return proc


# -- handed over in memory ---------------------------------------------------------------------


async def test_offered_statuses_are_applied_without_reading_the_inbox(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = await seed(store, "wamid.A", "wamid.B")
    proc = await idle(StatusProcessor(store))
    pending = await write(store, body(*chain("wamid.A"), st("wamid.B", "delivered", 2)))
    assert [p.update.message_id for p in pending] == ["wamid.A"] * 3 + ["wamid.B"]
    assert await inbox_states(store) == {"pending": 4}

    scans = 0
    claim_payloads = store.inbox.claim_payloads

    async def counting(*args: Any, **kwargs: Any) -> Any:
        nonlocal scans
        scans += 1
        return await claim_payloads(*args, **kwargs)

    monkeypatch.setattr(store.inbox, "claim_payloads", counting)
    proc.offer(pending)
    assert proc.queued == 4
    assert await proc.run_once() == 4
    assert scans == 0  # claimed by id, not read back
    assert proc.queued == 0 and proc.applied == 4
    assert await message_status(store, ids["wamid.A"]) == DeliveryStatus.READ
    assert await message_status(store, ids["wamid.B"]) == DeliveryStatus.DELIVERED
    assert await history_count(store) == 4
    assert await inbox_states(store) == {"done": 4}
    async with store.read() as conn:
        history = await store.statuses.history(conn, ids["wamid.A"])
    assert [h.status for h in history] == ["sent", "delivered", "read"] and all(h.applied for h in history)


async def test_scan_then_offer_applies_each_event_once(store: Store) -> None:
    ids = await seed(store, "wamid.A")
    proc = await idle(StatusProcessor(store))
    pending = await write(store, body(*chain("wamid.A")))
    assert await proc.drain() == 3  # found by the inbox scan (nothing handed over yet)
    assert await history_count(store) == 3
    proc.offer(pending)  # ... and then handed over too (a writer's hand-over racing a scan)
    await proc.run_once()
    assert await proc.drain() == 0
    assert await history_count(store) == 3  # no second history row
    assert proc.applied == 3 and proc.queued == 0
    assert await message_status(store, ids["wamid.A"]) == DeliveryStatus.READ


async def test_offer_then_scan_applies_each_event_once(store: Store) -> None:
    await seed(store, "wamid.A", "wamid.B")
    proc = await idle(StatusProcessor(store))
    pending = await write(store, body(*chain("wamid.A"), *chain("wamid.B")))
    proc.offer(pending)
    proc.notify()  # the same rows also announced for the scan: the scan runs first, then the queue
    assert await proc.drain() == 6
    assert await history_count(store) == 6
    assert await inbox_states(store) == {"done": 6}
    # a second processor (another process) handed the same events finds them taken
    other = await idle(StatusProcessor(store))
    other.offer(pending)
    await other.run_once()
    assert other.applied == 0
    assert await history_count(store) == 6


async def test_statuses_beyond_max_queued_are_applied_by_the_scan_exactly_once(store: Store) -> None:
    ids = await seed(store, "wamid.A", "wamid.B")
    proc = StatusProcessor(store, max_queued=2, idle_poll_s=60, coalesce_s=0.001)
    proc.start()
    try:
        for _ in range(500):  # the start-up scan (an empty inbox) done: the processor waits for work
            if not proc._scan_needed:
                break
            await asyncio.sleep(0.01)
        assert not proc._scan_needed
        first = await write(store, body(st("wamid.A", "sent", 1), st("wamid.A", "delivered", 2)))
        second = await write(
            store, body(st("wamid.A", "read", 3), st("wamid.B", "sent", 1), st("wamid.B", "delivered", 2))
        )
        proc.offer(first)  # fits
        proc.offer(second)  # would exceed max_queued: not queued, left to the inbox scan
        assert proc.queued <= 2
        # the idle poll is a minute away: the overflow itself must make the processor read the inbox
        for _ in range(1000):
            if await inbox_states(store) == {"done": 5}:
                break
            await asyncio.sleep(0.01)
        assert await inbox_states(store) == {"done": 5}
        await asyncio.sleep(0.1)
    finally:
        await proc.stop()
    assert await history_count(store) == 5
    assert proc.applied == 5
    assert await message_status(store, ids["wamid.A"]) == DeliveryStatus.READ
    assert await message_status(store, ids["wamid.B"]) == DeliveryStatus.DELIVERED


async def test_overflow_with_run_once(store: Store) -> None:
    await seed(store, "wamid.A", "wamid.B")
    proc = await idle(StatusProcessor(store, max_queued=3))
    first = await write(store, body(*chain("wamid.A")))
    second = await write(store, body(*chain("wamid.B")))
    proc.offer(first)
    proc.offer(second)
    assert proc.queued == 3  # only the first batch
    while await proc.run_once():
        pass
    assert proc.queued == 0 and proc.applied == 6
    assert await history_count(store) == 6
    assert await inbox_states(store) == {"done": 6}


# -- status_from_payload -----------------------------------------------------------------------


FULL = st(
    "wamid.F",
    "delivered",
    5,
    biz_opaque_callback_data="wf:7",
    conversation={
        "id": "8f842dbba350821654c9dfed31f5635c",
        "origin": {"type": "utility"},
        "expiration_timestamp": "1760086400",
    },
    pricing={"billable": False, "pricing_model": "PMP", "type": "free_customer_service", "category": "utility"},
)
FAILED = st(
    "wamid.E",
    "failed",
    9,
    errors=[
        {
            "code": 131047,
            "title": "Re-engagement message",
            "message": "Re-engagement message",
            "error_data": {"details": "Message failed to send because more than 24 hours have passed"},
        },
        {"code": 131026, "title": "Message undeliverable"},
    ],
)
PLAIN = st("wamid.P", "read", 3)


@pytest.mark.parametrize(
    "wire_status",
    [FULL, FAILED, PLAIN, st("wamid.U", "sent", 0, recipient_id=None)],
    ids=["conversation-pricing", "errors", "plain", "no-recipient"],
)
def test_status_from_payload_equals_validation(wire_status: dict[str, Any]) -> None:
    [parsed] = parse_webhook(body(wire_status)).events
    payload = orjson.loads(orjson.dumps(parsed.payload))  # as stored in the inbox and read back
    built = status_from_payload(payload)
    validated = StatusUpdate.model_validate(payload)
    assert built == validated
    assert built.model_dump() == validated.model_dump()
    assert built.model_dump(mode="json") == validated.model_dump(mode="json")
    assert type(built.status) is DeliveryStatus and built.timestamp.tzinfo is not None
    assert all(type(e) is ErrorDetail for e in built.errors)
    assert built == parsed.event  # what the parser built in the first place
    if wire_status is FAILED:
        assert [e.code for e in built.errors] == [131047, 131026]
    if wire_status is FULL:
        assert built.conversation and built.pricing and built.callback_data == "wf:7"


def test_status_from_payload_falls_back_to_validation_for_unusual_payloads() -> None:
    [parsed] = parse_webhook(body(FULL)).events
    payload = orjson.loads(orjson.dumps(parsed.payload))
    missing = {k: v for k, v in payload.items() if k not in ("callback_data", "pricing")}
    assert status_from_payload(missing) == StatusUpdate.model_validate(missing)
    assert status_from_payload(missing).callback_data is None
    epoch = {**payload, "timestamp": TS + 5}  # a number, not the parser's ISO text
    assert status_from_payload(epoch) == StatusUpdate.model_validate(epoch) == parsed.event
    with pytest.raises(ValidationError):
        status_from_payload({**payload, "status": "teleported"})
    with pytest.raises(ValidationError):
        status_from_payload({k: v for k, v in payload.items() if k != "message_id"})


# -- the receiver's inline application and its fallback ---------------------------------------


async def test_failed_inline_application_stores_the_statuses_pending(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = await seed(store, "wamid.A")
    receiver = WebhookReceiver(config(apply_statuses_inline=True), store)
    assert receiver.apply_statuses_inline and receiver.status_processor is not None
    proc = await idle(receiver.status_processor)

    calls = 0

    async def broken(*_args: Any, **_kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        raise RuntimeError("status application broke")

    raw = body(*chain("wamid.A"))
    try:
        with monkeypatch.context() as patch:
            patch.setattr(store.statuses, "apply_many", broken)
            answer = await receiver.handle(raw, signature(raw), lambda: {}, lambda: "peer")
        assert answer[0] == 200
        assert calls == 1  # it was tried inline
        assert await inbox_states(store) == {"pending": 3}  # stored once, pending
        assert await history_count(store) == 0
        assert await message_status(store, ids["wamid.A"]) == DeliveryStatus.ACCEPTED
        assert proc.queued == 3  # handed over to the processor
        assert await proc.drain() == 3  # apply_many restored
    finally:
        await receiver.stop()
    assert await inbox_states(store) == {"done": 3}
    assert await history_count(store) == 3
    assert await message_status(store, ids["wamid.A"]) == DeliveryStatus.READ


async def test_inline_application_applies_in_the_inbox_commit(store: Store) -> None:
    ids = await seed(store, "wamid.A")
    receiver = WebhookReceiver(config(apply_statuses_inline=True), store)
    raw = body(*chain("wamid.A"))
    try:
        assert await receiver.handle(raw, signature(raw), lambda: {}, lambda: "peer") == (200, b"ok")
        assert receiver.status_processor is not None and receiver.status_processor.queued == 0
    finally:
        await receiver.stop()
    assert await inbox_states(store) == {"done": 3}
    assert await history_count(store) == 3
    assert await message_status(store, ids["wamid.A"]) == DeliveryStatus.READ


async def test_default_application_mode_depends_on_the_database(store: Store) -> None:
    receiver = WebhookReceiver(config(), store)
    assert receiver.apply_statuses_inline is (store.dialect == "sqlite")
    assert receiver.status_processor is not None
    assert WebhookReceiver(config(apply_statuses_inline=False), store).apply_statuses_inline is False
