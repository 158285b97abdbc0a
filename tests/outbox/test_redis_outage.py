"""Redis as a dependency: a dispatcher whose shared limiter goes away pauses (one warning, claimed rows handed
back, nothing sent past the limit) and resumes when it is back; every row sent once, in order. The outage is a
TCP relay in front of the machine's Redis that the test cuts and restores."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from waflow.canonical import OutboundMessage
from waflow.outbox import DispatcherConfig, OutboxDispatcher, RetryPolicy, make_limiters

PNID = "106540352242922"  # the emulator's number (conftest.PNID)
OutboxEnv = Any  # conftest.OutboxEnv: test modules cannot import the conftest under importlib mode
pytestmark = pytest.mark.redis


class Relay:
    """127.0.0.1:<port> → Redis; `cut()` drops every connection and refuses new ones until `restore()`."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.server: asyncio.Server | None = None
        self.port = 0
        self.pipes: set[asyncio.StreamWriter] = set()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self.pipes |= {writer, up_writer}

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.IncompleteReadError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))
        self.pipes -= {writer, up_writer}

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        assert self.server is not None
        self.server.close()
        for pipe in list(self.pipes):
            pipe.transport.abort()
        await self.server.wait_closed()

    async def restore(self) -> None:
        await self.start()  # the same port


@contextlib.asynccontextmanager
async def relay_to(redis_url: str) -> AsyncIterator[Relay]:
    host_port = redis_url.split("://", 1)[1].split("/", 1)[0]
    host, port = host_port.rsplit(":", 1)
    relay = Relay((host, int(port)))
    await relay.start()
    try:
        yield relay
    finally:
        with contextlib.suppress(Exception):
            await relay.cut()


async def test_a_redis_outage_pauses_sending_and_resumes(env: OutboxEnv, redis_client: Any, redis_prefix: str,
                                                         redis_url: str, caplog: pytest.LogCaptureFixture) -> None:
    users = [f"3477{i:07d}" for i in range(60)]
    template = {"name": "hello_world", "language": {"code": "en_US"}}
    async with env.store.begin() as conn:
        ids = [await env.store.outbox.enqueue(conn, PNID, OutboundMessage(to=u, type="template", content=template),
                                              contact_key=u, business_initiated=True) for u in users]
    async with relay_to(redis_url) as relay:
        db = redis_url.rsplit("/", 1)[1] if redis_url.count("/") > 2 else "0"
        limiters = make_limiters(f"redis://127.0.0.1:{relay.port}/{db}", prefix=redis_prefix)
        config = DispatcherConfig(rate_per_s=20, poll_s=0.02, lease_s=6.0, maintenance_s=0.2, enforce_window=False,
                                  retry=RetryPolicy(base_delay_s=0.05, max_delay_s=1.0, unknown_grace_s=1.0))
        dispatcher = OutboxDispatcher(env.store, env.client(), limiters=limiters, config=config)
        caplog.set_level(logging.WARNING, logger="waflow.outbox")
        try:
            async with dispatcher.running():
                await env.emu.user(users[5]).wait_for_received(1, timeout=10)  # sending at 20/s
                await relay.cut()
                async with asyncio.timeout(10):
                    while dispatcher.limiter_problem is None:  # noqa: ASYNC110
                        await asyncio.sleep(0.02)
                at_pause = len(env.emu.sent())
                # claimed rows are handed back while it lasts (each as soon as its task next asks the limiter)
                await env.wait_until(lambda rs: not [r for r in rs if r.status.value == "queued" and r.claimed_by],
                                     timeout=10)
                handed_back = len(env.emu.sent())
                await relay.restore()
                restored = time.monotonic()
                await env.wait_until(lambda rs: all(r.status.value != "queued" for r in rs), timeout=30)
                resumed_in = time.monotonic() - restored
        finally:
            await limiters.aclose()
    warnings = [r for r in caplog.records if "rate limiter unavailable" in r.getMessage()]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert "Traceback" not in caplog.text and "crashed" not in caplog.text
    assert any("reachable again" in r.getMessage() for r in caplog.records)
    assert at_pause < len(users), "the outage came before the end"
    assert handed_back - at_pause <= 2, "nothing left during the outage but sends already past the gate"
    assert resumed_in <= 10, f"every row sent {resumed_in:.1f} s after Redis came back"
    rows = {r.id: r for r in await env.rows()}
    assert all(rows[i].status.value not in ("queued", "failed") for i in ids), [
        (r.id, r.status, r.error_text) for r in rows.values() if r.status.value in ("queued", "failed")]
    assert sorted(m.wa_id for m in env.emu.sent()) == sorted(users), "each row sent once"
