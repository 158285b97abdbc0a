"""After `kill -9`, the rows a dispatcher claimed but never started to send come back as soon as its lease runs
out — not after the unknown-outcome grace — while the one it may have sent follows the unknown-outcome rule
(settled by its status webhook, not sent again). `waflow serve` is killed right after its third send
(`WAFLOW_FAULT_POINT=outbox.sent:3`), with rows claimed ahead of it, and started again."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from waflow.canonical import OutboundMessage
from waflow.emulator import EmulatorConfig, run_emulator
from waflow.faults import ENV
from waflow.server.testing import ServeProcess, free_port, write_config
from waflow.store import Store, build_callback_data
from waflow.store.tables import outbound_messages

pytestmark = pytest.mark.slow

RATE = 5  # msg/s: the dispatcher claims 2 s of it ahead, so the kill leaves claimed rows never tried
LEASE_S, GRACE_S = 4.0, 60.0  # a grace longer than the test: a row that waited for it would fail the bound


async def test_untried_rows_of_a_killed_process_return_when_its_lease_ends(tmp_path: Path) -> None:
    emu_cfg = EmulatorConfig(app_secret="fast-secret", verify_token="vt", throughput_mps=RATE,
                             webhook_retry_schedule=[0.1] * 600)
    async with run_emulator(emu_cfg) as emu:
        emu.add_template("hello_world", "Hello!")
        port = free_port()
        emu.set_callback(f"http://127.0.0.1:{port}/webhook")
        config = write_config(tmp_path, emu, port=port,
                              sections={"outbox": {"lease_s": LEASE_S, "unknown_grace_s": GRACE_S}})
        store = Store.open(f"sqlite+aiosqlite:///{tmp_path / 'waflow.db'}")
        await store.upgrade()
        try:
            users = [f"3466{i:07d}" for i in range(20)]
            async with store.begin() as conn:
                ids = [await store.outbox.enqueue(conn, emu_cfg.phone_number_id, OutboundMessage(
                    to=u, type="template", content={"name": "hello_world", "language": {"code": "en_US"}}),
                    contact_key=u, business_initiated=True) for u in users]
            dead = ServeProcess(config, port, env={ENV: "outbox.sent:3"})
            dead.launch()
            assert await dead.wait(45) == -9
            killed = time.monotonic()
            async with store.read() as conn:
                held = (await conn.execute(select(outbound_messages.c.id, outbound_messages.c.sending_since).where(
                    outbound_messages.c.claimed_by.is_not(None)))).all()
            untried = [r.id for r in held if r.sending_since is None]
            assert len(untried) >= 3, f"the kill should leave claimed rows never tried: {held}"
            last = ServeProcess(config, port)
            await last.start()
            try:
                async with asyncio.timeout(40):
                    while True:
                        async with store.read() as conn:
                            left = (await conn.execute(select(outbound_messages.c.id).where(
                                outbound_messages.c.status == "queued"))).scalars().all()
                        if not left:
                            break
                        await asyncio.sleep(0.1)
                done_in = time.monotonic() - killed
            finally:
                assert await last.stop() == 0
        finally:
            await store.close()
    sends = emu.sends_by_callback_data()
    assert all(sends.get(build_callback_data(i), 0) == 1 for i in ids), {i: sends.get(build_callback_data(i))
                                                                         for i in ids}
    # the rest of the 20 at 5 msg/s takes ~3-4 s after the lease (4 s): far below the grace (60 s)
    assert done_in < LEASE_S + len(users) / RATE + 10, f"all sent {done_in:.1f} s after the kill"
