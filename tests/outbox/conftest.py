"""Fixtures for the outbox tests: the machine's real Redis, a unique key prefix per test, a controllable clock.

Redis tests are skipped when the server is unreachable, unless ``WAFLOW_REQUIRE_SERVICES=1`` (CI), where a
missing service must fail loudly instead of silently shrinking the test suite.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from redis.asyncio import BlockingConnectionPool, Redis
from redis.exceptions import RedisError

from waflow.outbox import ThroughputLimiter, max_in_window

REDIS_URL = os.environ.get("WAFLOW_REDIS_URL", "redis://127.0.0.1:6379/0")


def _services_required() -> bool:
    return os.environ.get("WAFLOW_REQUIRE_SERVICES", "").strip() in {"1", "true", "yes"}


@pytest.fixture
def redis_url() -> str:
    return REDIS_URL


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[Redis]:
    """A connected client, or skip (fail under WAFLOW_REQUIRE_SERVICES=1) when Redis is not reachable."""
    # A blocking pool, like make_limiters uses: many concurrent callers wait for a connection instead of failing.
    client: Redis = Redis.from_pool(
        BlockingConnectionPool.from_url(redis_url, max_connections=64, timeout=10, socket_connect_timeout=2)
    )
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        await client.aclose()
        message = f"Redis not reachable at {redis_url}: {exc}"
        if _services_required():
            pytest.fail(message + " (WAFLOW_REQUIRE_SERVICES=1)")
        pytest.skip(message)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
async def redis_prefix(redis_client: Redis) -> AsyncIterator[str]:
    """A key prefix no other test (or concurrent test run) uses; every key under it is deleted afterwards."""
    prefix = f"waflow-test:{uuid.uuid4().hex}"
    yield prefix
    keys = [key async for key in redis_client.scan_iter(match=f"{prefix}:*", count=500)]
    if keys:
        await redis_client.delete(*keys)


class FakeClock:
    """A monotonic microsecond clock that only moves when told to."""

    def __init__(self, start_s: float = 1000.0) -> None:
        self.now_us = round(start_s * 1_000_000)

    def __call__(self) -> int:
        return self.now_us

    def advance(self, seconds: float) -> None:
        self.now_us += round(seconds * 1_000_000)


@pytest.fixture
def fake_clock() -> FakeClock:
    return FakeClock()


# ---------------------------------------------------------------------------------------------------------------
# Real-time throughput runs, shared by the in-process and Redis tests (fixtures, because tests/outbox is not a
# package and test modules cannot import each other reliably).
# ---------------------------------------------------------------------------------------------------------------

NowUs = Callable[[], Awaitable[int]]
RunAcquirers = Callable[..., Awaitable[tuple[list[int], list[int]]]]
CheckThroughput = Callable[[list[int], int, float, int], None]


async def _run_acquirers(
    limiter: ThroughputLimiter,
    key: str,
    rate: int,
    workers: int,
    seconds: float,
    now_us: NowUs,
    burst: int = 1,
    strict: bool = False,
) -> tuple[list[int], list[int]]:
    """``workers`` tasks loop wait_for_slot → "send" for ``seconds`` of the limiter's clock, as a dispatcher would.

    Returns the go times (limiter clock, µs) and the observed wake-up times (this machine's wall clock, µs).
    """
    deadline = await now_us() + round(seconds * 1_000_000)
    go: list[int] = []
    woke: list[int] = []

    async def worker() -> None:
        while True:
            slot = (await limiter.wait_for_slot(key, rate, burst, strict=strict)).go_at_us[0]
            if slot >= deadline:  # booked past the end: not used
                return
            woke.append(time.time_ns() // 1000)  # where a dispatcher would send
            go.append(slot)

    await asyncio.gather(*(worker() for _ in range(workers)))
    return go, woke


def _check_throughput(go: list[int], rate: int, seconds: float, interval_us: int) -> None:
    """Booked slots: never more than ``rate`` in any 1 s window, spaced one interval apart, near ``rate``.

    The upper bound is the promise and is exact. The lower bounds are loose on purpose: on a loaded
    2-core machine the asking coroutines themselves fall behind; `bench/limits_throughput.py` measures
    the achieved rate on a quiet machine."""
    assert max_in_window(go) <= rate
    assert len(go) >= 0.75 * rate * seconds, (len(go), rate, seconds)
    gaps = [b - a for a, b in itertools.pairwise(sorted(go))]
    assert min(gaps) == interval_us  # never closer than one interval...
    # ...and exactly one apart while callers keep the limiter busy (a larger gap only where none was asking,
    # e.g. while the first Redis connections are being opened).
    assert gaps.count(interval_us) >= 0.8 * len(gaps)


@pytest.fixture
def run_acquirers() -> RunAcquirers:
    return _run_acquirers


@pytest.fixture
def check_throughput() -> CheckThroughput:
    return _check_throughput


# ---------------------------------------------------------------------------------------------------------------
# Dispatcher tests: a real SQLite store, the webhook receiver (statuses → store), the emulator on a real socket.
# ---------------------------------------------------------------------------------------------------------------

from dataclasses import dataclass, field  # noqa: E402
from typing import Any  # noqa: E402

from sqlalchemy import select  # noqa: E402

from waflow.canonical import ContactRef, OutboundMessage  # noqa: E402
from waflow.cloudapi import CloudAPIClient, Timeouts  # noqa: E402
from waflow.emulator import EmulatorConfig, EmulatorHandle, TemplateSeed, run_emulator, serve_asgi  # noqa: E402
from waflow.outbox import DispatcherConfig, OutboxDispatcher, RetryPolicy, make_limiters  # noqa: E402
from waflow.store import OutboundRecord, Store  # noqa: E402
from waflow.store.tables import contacts  # noqa: E402
from waflow.webhooks import WebhookConfig, create_webhook_app  # noqa: E402

PNID = "106540352242922"
WABA = "102290129340398"
APP_SECRET = "outbox-test-secret"
VERIFY = "outbox-verify"


@dataclass
class OutboxEnv:
    store: Store
    emu: EmulatorHandle
    webhook_url: str
    tokens: list[str] = field(default_factory=list)
    clients: list[CloudAPIClient] = field(default_factory=list)

    def client(self, *, read_timeout: float = 0.5) -> CloudAPIClient:
        c = CloudAPIClient(
            phone_number_id=PNID, waba_id=WABA, token=lambda: self.tokens[-1], base_url=self.emu.base_url,
            timeouts=Timeouts(connect=1.0, read=read_timeout, write=1.0, pool=5.0, total=read_timeout + 0.5),
        )
        self.clients.append(c)
        return c

    def dispatcher(self, client: CloudAPIClient | None = None, **cfg: Any) -> OutboxDispatcher:
        retry = cfg.pop("retry", None) or RetryPolicy(base_delay_s=0.05, max_delay_s=1.0, unknown_grace_s=1.0)
        config = DispatcherConfig(poll_s=0.02, lease_s=5.0, maintenance_s=0.2, retry=retry, **cfg)
        return OutboxDispatcher(self.store, client or self.client(), limiters=make_limiters(None), config=config)

    async def open_windows(self, *wa_ids: str) -> None:
        """Each user writes to the business (emulator window) and the webhook stores the contact (our window)."""
        for wa_id in wa_ids:
            await self.emu.user(wa_id).send_text("hi")
        async with asyncio.timeout(10):
            while True:
                async with self.store.read() as conn:
                    rows = (await conn.execute(select(contacts.c.contact_key))).scalars().all()
                if set(wa_ids) <= set(rows):
                    return
                await asyncio.sleep(0.02)

    async def store_contact(self, wa_id: str) -> None:
        """A contact our store believes wrote recently, whom the emulator never heard from."""
        async with self.store.begin() as conn:
            await self.store.contacts.upsert_from_inbound(conn, PNID, ContactRef(wa_id=wa_id), None)
            from waflow.store import utcnow

            await self.store.contacts.upsert_from_inbound(conn, PNID, ContactRef(wa_id=wa_id), utcnow())

    async def enqueue(self, to: str, type_: str = "text", content: dict[str, Any] | None = None,
                      *, business_initiated: bool = False, recipient: str | None = None,
                      fallback: dict[str, Any] | None = None) -> int:
        message = OutboundMessage(to=None if recipient else to, recipient=recipient, type=type_,
                                  content=content if content is not None else {"body": "hello"})
        async with self.store.begin() as conn:
            return await self.store.outbox.enqueue(conn, PNID, message, contact_key=recipient or to,
                                                   business_initiated=business_initiated,
                                                   fallback_template=fallback)

    async def row(self, outbound_id: int) -> OutboundRecord:
        async with self.store.read() as conn:
            rec = await self.store.outbox.get(conn, outbound_id)
        assert rec is not None
        return rec

    async def rows(self) -> list[OutboundRecord]:
        from waflow.store.outbox import OUTBOUND_COLUMNS
        from waflow.store.tables import outbound_messages

        async with self.store.read() as conn:
            result = await conn.execute(select(*OUTBOUND_COLUMNS).order_by(outbound_messages.c.id))
            return [OutboundRecord.from_row(r) for r in result]

    async def wait_until(self, predicate: Callable[[list[OutboundRecord]], bool], timeout: float = 20) -> None:  # noqa: ASYNC109
        async with asyncio.timeout(timeout):
            while not predicate(await self.rows()):  # noqa: ASYNC110
                await asyncio.sleep(0.05)


def emulator_config(callback_url: str, **kw: Any) -> EmulatorConfig:
    seeds = [
        TemplateSeed(name="hello_world", components=[{"type": "BODY", "text": "Hello from us"}]),
        TemplateSeed(name="order_update", components=[{"type": "BODY", "text": "Hi {{1}}, order {{2}} shipped"}]),
    ]
    base: dict[str, Any] = {
        "callback_url": callback_url, "app_secret": APP_SECRET, "verify_token": VERIFY, "phone_number_id": PNID,
        "waba_id": WABA, "hang_seconds": 3.0, "templates": seeds, "seed": 7,
    }
    base.update(kw)
    return EmulatorConfig(**base)


@contextlib.asynccontextmanager
async def outbox_environment(store: Store, **emu_kw: Any) -> AsyncIterator[OutboxEnv]:
    app = create_webhook_app(WebhookConfig.single(PNID, app_secret=APP_SECRET, verify_token=VERIFY), store)
    async with serve_asgi(app) as base:
        url = f"{base}/webhook"
        async with run_emulator(emulator_config(url, **emu_kw)) as emu:
            env = OutboxEnv(store, emu, url, tokens=[emu.config.access_token])
            try:
                yield env
            finally:
                for c in env.clients:
                    await c.aclose()


@pytest.fixture
async def env(sqlite_store: Store) -> AsyncIterator[OutboxEnv]:
    async with outbox_environment(sqlite_store) as e:
        yield e


@pytest.fixture
def outbox_environment_factory() -> Callable[..., contextlib.AbstractAsyncContextManager[OutboxEnv]]:
    """`async with outbox_environment_factory(store, **emulator_config) as env:` for tests with their own store."""
    return outbox_environment
