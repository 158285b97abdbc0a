"""Template status webhooks are processed, not left pending: the templates table follows them in the webhook's
transaction, and a dispatcher that cached the template as PENDING sends it once it is approved (the emulator
emits the webhook to the receiver on a real socket). Account updates and webhook errors are archived (done)."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import select

from waflow.canonical import OutboundMessage
from waflow.outbox import DispatcherConfig, OutboxDispatcher, RetryPolicy, TemplateCache, make_limiters
from waflow.store.tables import inbound_events

PNID = "106540352242922"  # the emulator's number (conftest.PNID)
WABA = "102290129340398"
OutboxEnv = Any  # conftest.OutboxEnv: test modules cannot import the conftest under importlib mode


async def inbox_states(env: OutboxEnv, kind: str) -> list[str]:
    async with env.store.read() as conn:
        stmt = select(inbound_events.c.state).where(inbound_events.c.kind == kind)
        return list((await conn.execute(stmt)).scalars())


async def test_an_approval_reaches_a_dispatcher_that_cached_the_template_pending(env: OutboxEnv) -> None:
    template = env.emu.add_template("launch_day", "We open on Monday", status="PENDING")
    client = env.client()
    cache = TemplateCache(env.store, client, WABA)
    config = DispatcherConfig(poll_s=0.02, lease_s=5.0, maintenance_s=0.2, enforce_window=False,
                              retry=RetryPolicy(base_delay_s=0.05, max_delay_s=1.0, unknown_grace_s=1.0))
    dispatcher = OutboxDispatcher(env.store, client, limiters=make_limiters(None), config=config,
                                  templates={PNID: cache})
    async with dispatcher.running():  # it syncs its cache at start: the template is PENDING there
        found = await cache.lookup("launch_day", "en_US")
        assert found is not None and found.status == "PENDING"

        env.emu.set_template_status(template.id, "APPROVED")  # the emulator posts the status webhook
        async with asyncio.timeout(10):
            while await inbox_states(env, "template_status") != ["done"]:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        async with env.store.read() as conn:
            row = await env.store.templates.get(conn, WABA, "launch_day", "en_US")
        assert row is not None and row.status == "APPROVED", "the table follows the webhook"

        async with env.store.begin() as conn:
            oid = await env.store.outbox.enqueue(
                conn, PNID, OutboundMessage(to="34680000001", type="template",
                                            content={"name": "launch_day", "language": {"code": "en_US"}}),
                contact_key="34680000001", business_initiated=True)
        dispatcher.notify()
        await env.wait_until(lambda rows: all(r.status.value != "queued" for r in rows))
    sent = await env.row(oid)
    assert sent.status.value != "failed", (sent.error_code, sent.error_text)
    assert [m.content["name"] for m in env.emu.user("34680000001").received()] == ["launch_day"]
