"""Scoped webhooks: a status is applied only to a message of the number (and so the app) that signed it, and
events of numbers this deployment does not serve are never filed — over a real socket, both apply paths."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY

from waflow.canonical import OutboundMessage
from waflow.store import Store, utcnow
from waflow.store.outbox import Acceptance
from waflow.webhooks import StatusProcessor

from .helpers import PNID, PNID_B, SECRET, SECRET_B, WABA, WABA_B, config, contact_rows, inbox_rows, post, serve

WAMID = "wamid.A-DELIVERED"


def status_doc(pnid: str, waba: str, status: str, wamid: str = WAMID, **extra: Any) -> dict[str, Any]:
    st = {"id": wamid, "status": status, "timestamp": "1760000100", "recipient_id": "34600111222", **extra}
    return {"object": "whatsapp_business_account", "entry": [{"id": waba, "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp", "metadata": {"display_phone_number": "1", "phone_number_id": pnid},
        "statuses": [st]}}]}]}


def text_doc(pnid: str, wamid: str) -> dict[str, Any]:
    return {"object": "whatsapp_business_account", "entry": [{"id": WABA, "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp", "metadata": {"display_phone_number": "1", "phone_number_id": pnid},
        "contacts": [{"profile": {"name": "Eve"}, "wa_id": "34600999888"}],
        "messages": [{"from": "34600999888", "id": wamid, "timestamp": "1760000000", "type": "text",
                      "text": {"body": "hola"}}]}}]}]}


def counter(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


async def a_sent_message(store: Store) -> int:
    """A's message, accepted by the provider as WAMID."""
    async with store.begin() as conn:
        oid = await store.outbox.enqueue(conn, PNID, OutboundMessage(to="34600111222", type="text",
                                         content={"body": "your order"}), contact_key="34600111222",
                                         business_initiated=False)
        await store.outbox.record_accepted_many(conn, [Acceptance(oid, WAMID, utcnow())])
    return oid


@pytest.mark.parametrize("inline", [True, False], ids=["inline", "processor"])
async def test_another_apps_status_never_moves_a_message(store: Store, inline: bool) -> None:

    oid = await a_sent_message(store)
    before = counter("webhooks_statuses_foreign_total")
    # inline: applied in the webhook's own transaction; processor: left pending, applied by a StatusProcessor
    cfg = config(apply_statuses_inline=inline, status_processor=False)
    async with serve(store, cfg) as url, httpx.AsyncClient() as c:
        assert (await post(c, url, status_doc(PNID, WABA, "delivered"))).status_code == 200
        # app B signs a body about its own number, naming A's message id: authentic, but not A's to change
        forged = status_doc(PNID_B, WABA_B, "failed", errors=[{"code": 131026, "title": "Message undeliverable"}])
        assert (await post(c, url, forged, secret=SECRET_B)).status_code == 200
        assert (await post(c, url, status_doc(PNID_B, WABA_B, "read"), secret=SECRET_B)).status_code == 200
    if not inline:
        assert await StatusProcessor(store).drain() == 3
    assert all(r["state"] == "done" for r in await inbox_rows(store))
    async with store.read() as conn:
        history = await store.outbox.history(conn, oid)
    assert history is not None
    assert history.message.status.value == "delivered", "B's read / failed did not apply to A's message"
    assert [s.status for s in history.statuses] == ["delivered"], "nor entered its history"
    assert counter("webhooks_statuses_foreign_total") == before + 2
    async with store.begin() as conn:  # the held-status sweep does not adopt them either
        assert await store.statuses.adopt_held(conn) == []


async def test_a_held_status_of_another_number_is_not_adopted_at_acceptance(store: Store) -> None:
    """B's status for an id arrives before A's send response records that id: A's acceptance leaves it alone."""
    async with serve(store, config(apply_statuses_inline=True)) as url, httpx.AsyncClient() as c:
        assert (await post(c, url, status_doc(PNID_B, WABA_B, "read"), secret=SECRET_B)).status_code == 200
        assert (await post(c, url, status_doc(PNID, WABA, "delivered"), secret=SECRET)).status_code == 200
    oid = await a_sent_message(store)
    async with store.read() as conn:
        history = await store.outbox.history(conn, oid)
    assert history is not None
    assert history.message.status.value == "delivered"
    assert [s.status for s in history.statuses] == ["delivered"]


@pytest.mark.parametrize("spelling", ["0" + PNID, PNID + " ", "+" + PNID, "999999999999999"])
async def test_events_of_numbers_not_configured_are_never_filed(store: Store, spelling: str) -> None:
    before = counter("webhooks_received_total", {"result": "unknown_number"})
    async with serve(store) as url, httpx.AsyncClient() as c:
        r = await post(c, url, text_doc(spelling, "wamid.ALIEN"), secret=SECRET)
        assert r.status_code == 200, "authentic: answered, so Meta does not redeliver it for days"
        r = await post(c, url, text_doc(PNID, "wamid.OURS"), secret=SECRET)
        assert r.status_code == 200
    rows = await inbox_rows(store)
    assert [r["provider_message_id"] for r in rows] == ["wamid.OURS"]
    assert {r["phone_number_id"] for r in await contact_rows(store)} == {PNID}
    assert counter("webhooks_received_total", {"result": "unknown_number"}) == before + 1
