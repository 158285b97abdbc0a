"""Fixtures for the outbox tests: the machine's real Redis, a unique key prefix per test, a controllable clock.

Redis tests are skipped when the server is unreachable, unless ``WAFLOW_REQUIRE_SERVICES=1`` (CI), where a
missing service must fail loudly instead of silently shrinking the test suite.
"""

from __future__ import annotations

import asyncio
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
    """Booked slots: never more than ``rate`` in any 1 s window, spaced one interval apart, ≥ 95 % of ``rate``."""
    assert max_in_window(go) <= rate
    assert len(go) >= 0.95 * rate * seconds, (len(go), rate, seconds)
    gaps = [b - a for a, b in itertools.pairwise(sorted(go))]
    assert min(gaps) == interval_us  # never closer than one interval...
    # ...and exactly one apart while callers keep the limiter busy (a larger gap only where none was asking,
    # e.g. while the first Redis connections are being opened).
    assert gaps.count(interval_us) >= 0.95 * len(gaps)


@pytest.fixture
def run_acquirers() -> RunAcquirers:
    return _run_acquirers


@pytest.fixture
def check_throughput() -> CheckThroughput:
    return _check_throughput
