"""SIGKILL at each step of a message's way — claimed, sent, recorded, statuses applied — on SQLite and on
PostgreSQL: `waflow serve` is started with `WAFLOW_FAULT_POINT` set (`waflow.faults`), kills itself there, and
is started again with the next point, until a last process runs without one. The emulator's own log is the
judge: every message accepted exactly once, and each recipient's messages in the order they were queued.

The emulator redelivers webhooks that found the process dead (as Meta does, on a compressed schedule), so the
statuses of a send that was accepted just before a kill come back after the restart: they must settle it, and
the resend after its unknown outcome must not happen."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from pathlib import Path

import pytest
from sqlalchemy import select

from waflow.canonical import OutboundMessage
from waflow.emulator import EmulatorConfig, run_emulator
from waflow.faults import ENV
from waflow.server.testing import ServeProcess, free_port, write_config
from waflow.store import Store, build_callback_data, parse_callback_data
from waflow.store.tables import inbound_events, outbound_messages

pytestmark = pytest.mark.slow

RECIPIENTS = [f"3465{i:07d}" for i in range(6)]
PER_RECIPIENT = 6
# (point, on which pass): one process per entry, each killed there; the last process runs without a point
# (20 msg/s and 36 messages: each process dies with most of the work still to do)
CHAIN = [("outbox.claimed", 1), ("statuses.applied", 2), ("outbox.sent", 3), ("outbox.recorded", 2)]
# short recovery timings: a lease must outlast the longest send (graph.timeout_s + 5)
TIMINGS = {"outbox": {"lease_s": 6.0, "unknown_grace_s": 2.0}}
GRAPH_TIMEOUT = {"WAFLOW_GRAPH__TIMEOUT_S": "0.5"}
SETTLE_S = 60  # the last process sends what is left well within this


async def enqueue_all(store: Store, phone_number_id: str) -> list[int]:
    """Every message queued before any dispatcher runs: round robin over the recipients."""
    ids = []
    async with store.begin() as conn:
        for n in range(PER_RECIPIENT):
            for to in RECIPIENTS:
                message = OutboundMessage(to=to, type="template", content={
                    "name": "hello_world", "language": {"code": "en_US"},
                    "components": [{"type": "body", "parameters": [{"type": "text", "text": f"{to}-{n}"}]}],
                })
                ids.append(await store.outbox.enqueue(conn, phone_number_id, message, contact_key=to,
                                                      business_initiated=True))
    return ids


async def settled(store: Store, ids: list[int]) -> bool:
    async with store.read() as conn:
        statuses = dict((await conn.execute(
            select(outbound_messages.c.id, outbound_messages.c.status).where(outbound_messages.c.id.in_(ids))
        )).all())
        pending = (await conn.execute(
            select(inbound_events.c.id).where(inbound_events.c.state == "pending").limit(1)
        )).first()
    return pending is None and all(statuses.get(i) not in (None, "queued") for i in ids)


async def test_a_kill_at_every_step_sends_each_message_once_and_in_order(store_url: str, tmp_path: Path) -> None:
    url = store_url  # an empty database of each backend (tests/conftest.py)
    emu_cfg = EmulatorConfig(app_secret="faults-secret", verify_token="vt", throughput_mps=20,
                             webhook_retry_schedule=[0.1] * 600)  # a minute of redeliveries, like Meta's days
    async with run_emulator(emu_cfg) as emu:
        emu.add_template("hello_world", "Hello {{1}}!")
        port = free_port()
        emu.set_callback(f"http://127.0.0.1:{port}/webhook")
        config = write_config(tmp_path, emu, port=port, store_url=url, sections=TIMINGS)
        store = Store.open(url)
        await store.upgrade()
        try:
            ids = await enqueue_all(store, emu_cfg.phone_number_id)
            for point, nth in CHAIN:
                serve = ServeProcess(config, port, env={**GRAPH_TIMEOUT, ENV: f"{point}:{nth}"})
                serve.launch()
                rc = await serve.wait(45)
                assert rc == -9, f"{point}:{nth}: the process should have been killed there (exit {rc})"
            last = ServeProcess(config, port, env=GRAPH_TIMEOUT)
            await last.start()
            try:
                deadline = time.monotonic() + SETTLE_S
                while not await settled(store, ids):
                    tail = last.log.read_text()[-3000:]
                    assert time.monotonic() < deadline, f"not settled within {SETTLE_S} s: {tail}"
                    await asyncio.sleep(0.2)
                await emu.webhooks_idle(10)
            finally:
                assert await last.stop() == 0
        finally:
            await store.close()

    sends = emu.sends_by_callback_data()
    twice = {i: sends.get(build_callback_data(i), 0) for i in ids if sends.get(build_callback_data(i), 0) != 1}
    assert not twice, f"sent other than once (outbox id: times): {twice}"
    by_recipient: dict[str, list[int]] = defaultdict(list)
    for message in emu.sent():
        oid = parse_callback_data(message.callback_data)
        assert oid is not None
        by_recipient[message.wa_id].append(oid)
    out_of_order = {to: got for to, got in by_recipient.items() if got != sorted(got)}
    assert not out_of_order, f"sent out of order (recipient: outbox ids in the order sent): {out_of_order}"
    assert sorted(by_recipient) == sorted(RECIPIENTS)
