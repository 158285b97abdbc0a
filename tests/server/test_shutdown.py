"""Graceful shutdown loses nothing: SIGTERM `waflow serve` (a real process) during a burst of webhooks and API
sends; every webhook answered 200 is stored, and after a restart every queued message is sent exactly once."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import httpx
import orjson
import pytest
from sqlalchemy import select

from waflow.emulator import EmulatorConfig, EmulatorHandle, run_emulator
from waflow.server.testing import ServeProcess, free_port, write_config
from waflow.store import Store, build_callback_data
from waflow.store.tables import inbound_events, outbound_messages

pytestmark = pytest.mark.slow
FLOWS = Path(__file__).parent / "flows"


def stored_ok_wamids(emu: EmulatorHandle) -> list[str]:
    """The user-message ids of every webhook POST that waflow answered 200."""
    out = []
    for attempt in emu.webhook_attempts:
        if attempt.status_code != 200:
            continue
        for entry in orjson.loads(attempt.body)["entry"]:
            for change in entry["changes"]:
                out += [m["id"] for m in change["value"].get("messages", [])]
    return out


async def test_sigterm_during_a_burst_loses_nothing_and_sends_once(tmp_path: Path) -> None:
    # 10 msg/s against ~90 rows/s written by the burst: SIGTERM leaves queued rows for the next process,
    # which drains them in well under the 60 s it is given
    emu_cfg = EmulatorConfig(app_secret="shutdown-secret", verify_token="vt", throughput_mps=10)
    async with run_emulator(emu_cfg) as emu:
        emu.add_template("hello_world", "Hello!")
        port = free_port()
        emu.set_callback(f"http://127.0.0.1:{port}/webhook")
        config = write_config(tmp_path, emu, port=port, flows_dir=FLOWS, server={"shutdown_timeout_s": 5})
        serve = ServeProcess(config, port)
        await serve.start()
        enqueued: list[int] = []
        stop_bursts = asyncio.Event()

        async def webhooks(lane: int) -> None:
            i = 0
            while not stop_bursts.is_set():
                await emu.user(f"34{lane}{i:09d}", name="U").send_text(f"hello {lane}.{i}", wait=False)
                i += 1
                await asyncio.sleep(0.05)

        async def sends(api: httpx.AsyncClient) -> None:
            i = 0
            while not stop_bursts.is_set():
                body = {"to": f"4479{i:08d}", "type": "template",
                        "content": {"name": "hello_world", "language": {"code": "en_US"}}}
                with contextlib.suppress(httpx.HTTPError):
                    r = await api.post("/api/v1/messages", json=body)
                    if r.status_code == 202:
                        enqueued.append(r.json()["id"])
                i += 1
                await asyncio.sleep(0.02)

        async with serve.api() as api:
            tasks = [asyncio.create_task(webhooks(lane)) for lane in range(2)]
            tasks.append(asyncio.create_task(sends(api)))
            await asyncio.sleep(1.5)
            serve.terminate()
            rc = await serve.wait(30)
            stop_bursts.set()
            await asyncio.gather(*tasks)
            answered_before = stored_ok_wamids(emu)
        assert rc == 0, serve.log.read_text()[-3000:]
        assert len(answered_before) > 20 and len(enqueued) > 10, (len(answered_before), len(enqueued))

        store = Store.open(f"sqlite+aiosqlite:///{tmp_path / 'waflow.db'}")
        try:
            async with store.read() as conn:
                inbox = set((await conn.execute(select(inbound_events.c.provider_message_id))).scalars())
                queued_before = (await conn.execute(
                    select(outbound_messages.c.id).where(outbound_messages.c.status == "queued"))).scalars().all()
            missing = [w for w in answered_before if w not in inbox]
            assert not missing, f"{len(missing)} webhooks answered 200 but not stored: {missing[:5]}"

            restarted = ServeProcess(config, port)
            await restarted.start()
            try:
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    async with store.read() as conn:
                        rows = (await conn.execute(select(outbound_messages.c.id, outbound_messages.c.status))).all()
                        pending = (await conn.execute(
                            select(inbound_events.c.id).where(inbound_events.c.state == "pending",
                                                              inbound_events.c.kind == "message"))).all()
                    if rows and not pending and all(status != "queued" for _, status in rows):
                        break
                    await asyncio.sleep(0.2)
                stored_ok = stored_ok_wamids(emu)  # answered 200 before the read below: committed
                async with store.read() as conn:
                    inbox = set((await conn.execute(select(inbound_events.c.provider_message_id))).scalars())
                    om = outbound_messages.c
                    stuck = (await conn.execute(
                        select(om.id, om.contact_key, om.status, om.queue_head, om.waiting_reason, om.due_at,
                               om.attempts, om.throttles, om.error_code, om.claimed_by, om.claimed_until)
                        .where(om.status.in_(("queued", "failed"))).order_by(om.id).limit(8))).all()
                assert not [w for w in stored_ok if w not in inbox], "a webhook answered 200 was not stored"
            finally:
                assert await restarted.stop() == 0
        finally:
            await store.close()

        statuses = dict(rows)
        assert set(enqueued) <= set(statuses)
        left = {i: s for i, s in statuses.items() if s in ("queued", "failed")}
        assert not left, (len(statuses), len(left), [tuple(r) for r in stuck],
                          (tmp_path / "serve.log").read_text()[-3000:])
        sends_by_id = emu.sends_by_callback_data()
        twice = {i: n for i in statuses if (n := sends_by_id.get(build_callback_data(i), 0)) != 1}
        assert not twice, f"sent other than exactly once: {dict(list(twice.items())[:10])}"
        replies = [i for i in statuses if i not in set(enqueued)]
        assert len(replies) >= len(stored_ok), "every stored webhook got its flow reply"
        assert queued_before, "the burst should leave queued rows for the restarted process"
