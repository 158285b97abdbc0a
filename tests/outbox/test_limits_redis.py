"""Redis limiters against the machine's real Redis, including two OS processes sharing one limiter.

Go times come back on the Redis server's clock (``Reservation.go_at_us``), so reservations made by different
processes can be merged and checked exactly; observed wake-up times use the machine's wall clock, which both
processes share.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from redis.asyncio import Redis

from waflow.outbox import (
    RedisPairLimiter,
    RedisThroughputLimiter,
    RedisTierCounter,
    gcra_params,
    make_limiters,
    max_in_window,
)

US = 1_000_000

pytestmark = pytest.mark.redis


def server_clock(redis: Redis) -> Any:
    async def now_us() -> int:
        seconds, micros = await redis.time()
        return int(seconds) * US + int(micros)

    return now_us


# ---------------------------------------------------------------------------------------------------------------
# Throughput
# ---------------------------------------------------------------------------------------------------------------


async def test_redis_reserve_semantics_match_in_process(redis_client: Redis, redis_prefix: str) -> None:
    limiter = RedisThroughputLimiter(redis_client, prefix=redis_prefix, window_guard_s=0)
    r = await limiter.reserve("pn", 4, 1000)
    assert r.waits == [0.0, 0.001, 0.002, 0.003]
    assert (r.interval_us, r.tau_us, r.count) == (1000, 0, 4)
    nxt = await limiter.reserve("pn", 1, 1000)
    assert nxt.go_at_us[0] == r.go_at_us[-1] + 1000  # the next caller gets the slot after the batch
    assert await limiter.acquire("other", 1000) == 0.0
    burst = await limiter.acquire_many("pn-burst", 6, 10, burst=3)
    assert burst[:3] == [0.0, 0.0, 0.0]
    assert burst[3:] == pytest.approx([0.125, 0.25, 0.375], abs=0.002)  # minus the µs between the calls
    ttl_ms = await redis_client.pttl(limiter.key("pn"))
    assert 0 < ttl_ms <= 1000 + 10  # state expires soon after it stops mattering


async def test_redis_concurrent_acquirers_stay_within_rate(
    redis_client: Redis, redis_prefix: str, run_acquirers: Any, check_throughput: Any
) -> None:
    limiter = RedisThroughputLimiter(redis_client, prefix=redis_prefix)
    seconds = 1.5
    now = server_clock(redis_client)
    # Open the pool's connections first, as a running dispatcher would have: connecting many sockets at once
    # stalls the loop for tens of ms, and strict mode would then give many slots up.
    await asyncio.gather(*(redis_client.ping() for _ in range(64)))
    (go200, _), (go80, _), (go_strict, woke_strict) = await asyncio.gather(
        run_acquirers(limiter, "pn-200", 200, 25, seconds, now),
        run_acquirers(limiter, "pn-80", 80, 25, seconds, now),
        run_acquirers(limiter, "pn-strict", 200, 25, seconds, now, strict=True),
    )
    check_throughput(go200, 200, seconds, gcra_params(200)[0])
    check_throughput(go80, 80, seconds, gcra_params(80)[0])
    # Strict mode: actual wake-ups (this machine's clock) stay within the rate as well.
    assert max_in_window(go_strict) <= 200
    assert max_in_window(woke_strict) <= 200
    assert len(woke_strict) >= 0.5 * 200 * seconds


# Run by each child process: connect, say "ready", wait for "go <json>", do the work, print one JSON line.
WORKER = r"""
import asyncio, json, random, sys
from redis.asyncio import Redis
from waflow.outbox import RedisThroughputLimiter, RedisTierCounter

async def main():
    url, prefix = sys.argv[1], sys.argv[2]
    redis = Redis.from_url(url)
    await redis.ping()
    print("ready", flush=True)
    cmd = json.loads((await asyncio.to_thread(sys.stdin.readline)).split(" ", 1)[1])
    out = {}
    if cmd["mode"] == "throughput":
        limiter = RedisThroughputLimiter(redis, prefix=prefix)
        go = []
        async def worker():
            while True:
                slot = (await limiter.wait_for_slot(cmd["key"], cmd["rate"])).go_at_us[0]
                if slot >= cmd["deadline_us"]:
                    return
                go.append(slot)
        await asyncio.gather(*(worker() for _ in range(cmd["workers"])))
        out = {"go": go}
    else:
        tier = RedisTierCounter(redis, prefix=prefix)
        rng = random.Random(cmd["seed"])
        queue = list(cmd["recipients"])
        rng.shuffle(queue)
        admitted = []
        async def worker():
            while queue:
                recipient = queue.pop()
                if await tier.admit(cmd["number"], recipient, cmd["limit"]):
                    admitted.append(recipient)
        await asyncio.gather(*(worker() for _ in range(cmd["workers"])))
        out = {"admitted": admitted}
    await redis.aclose()
    print(json.dumps(out), flush=True)

asyncio.run(main())
"""


async def run_two_processes(
    redis_url: str, prefix: str, make_commands: Callable[[], Awaitable[list[dict[str, Any]]]], n: int = 2
) -> list[dict[str, Any]]:
    """Start ``n`` children, wait until all are connected, then send each its command (made only now, so a
    deadline can be fixed after the slow interpreter start-up), release them together, collect their results."""
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            WORKER,
            redis_url,
            prefix,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        for _ in range(n)
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None
            line = await asyncio.wait_for(proc.stdout.readline(), 20)
            assert line.strip() == b"ready", line
        for proc, command in zip(procs, await make_commands(), strict=True):
            assert proc.stdin is not None
            proc.stdin.write(b"go " + json.dumps(command).encode() + b"\n")
            await proc.stdin.drain()
        results = []
        for proc in procs:
            stdout, _ = await asyncio.wait_for(proc.communicate(), 30)
            assert proc.returncode == 0
            results.append(json.loads(stdout.decode().strip().splitlines()[-1]))
        return results
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()


async def test_two_processes_share_the_throughput_limit(
    redis_client: Redis, redis_prefix: str, redis_url: str, check_throughput: Any
) -> None:
    rate, seconds = 200, 1.5
    template = {"mode": "throughput", "key": "pn", "rate": rate, "workers": 15}
    deadline = 0

    async def commands() -> list[dict[str, Any]]:
        nonlocal deadline
        deadline = await server_clock(redis_client)() + round(seconds * US)
        return [template | {"deadline_us": deadline}] * 2

    results = await run_two_processes(redis_url, redis_prefix, commands)
    go = [g for r in results for g in r["go"]]
    assert all(len(r["go"]) > 0.3 * rate * seconds for r in results)  # both processes really took part
    first = min(go)
    span_s = (deadline - first) / US
    check_throughput(go, rate, span_s, gcra_params(rate)[0])
    assert span_s > seconds - 0.1  # the children were released together, right after the deadline was fixed
    assert len(go) / span_s == pytest.approx(rate, rel=0.05)


async def test_two_processes_tier_counter_admits_exactly_the_limit(
    redis_client: Redis, redis_prefix: str, redis_url: str
) -> None:
    limit = 20
    recipients = [f"+1555000{i:04d}" for i in range(60)]
    base = {"mode": "tier", "number": "pn", "limit": limit, "recipients": recipients, "workers": 10}

    async def commands() -> list[dict[str, Any]]:
        return [base | {"seed": 1}, base | {"seed": 2}]

    results = await run_two_processes(redis_url, redis_prefix, commands)
    admitted = [set(r["admitted"]) for r in results]
    union = admitted[0] | admitted[1]
    assert len(union) == limit
    tier = RedisTierCounter(redis_client, prefix=redis_prefix)
    assert await tier.count("pn") == limit
    counted = next(iter(union))
    assert await tier.admit("pn", counted, limit)  # repeats are free
    assert not await tier.admit("pn", next(r for r in recipients if r not in union), limit)
    assert await tier.count("pn") == limit


# ---------------------------------------------------------------------------------------------------------------
# Pair limiter (small numbers so the test is fast: capacity 3, 5 tokens/s)
# ---------------------------------------------------------------------------------------------------------------


async def test_redis_pair_burst_then_rate(redis_client: Redis, redis_prefix: str) -> None:
    pair = RedisPairLimiter(redis_client, prefix=redis_prefix, interval_s=0.2, capacity=3)
    assert [await pair.try_acquire("pn", "u1") for _ in range(3)] == [0.0] * 3
    first = await pair.try_acquire("pn", "u1")
    assert 0.15 < first <= 0.2
    again = await pair.try_acquire("pn", "u1")
    assert 0 < again <= first  # a refusal reserves nothing: the wait only shrinks
    assert await pair.try_acquire("pn", "u2") == 0.0  # other recipients are unaffected
    await asyncio.sleep(again + 0.01)
    assert await pair.try_acquire("pn", "u1") == 0.0
    assert 0.15 < await pair.try_acquire("pn", "u1") <= 0.2
    await asyncio.sleep(0.65)  # 3 tokens back, and no more
    assert [await pair.try_acquire("pn", "u1") for _ in range(4)].count(0.0) == 3
    ttl_ms = await redis_client.pttl(pair.key("pn", "u1"))
    assert 0 < ttl_ms <= 2000


async def test_redis_pair_penalize(redis_client: Redis, redis_prefix: str) -> None:
    pair = RedisPairLimiter(redis_client, prefix=redis_prefix, interval_s=0.2, capacity=3)
    assert await pair.penalize("pn", "u1", 0) == pytest.approx(1.0, abs=0.01)  # 4^0 s
    assert await pair.try_acquire("pn", "u1") == pytest.approx(1.0, abs=0.1)  # less the time since the penalty
    assert await pair.penalize("pn", "u1", 1) == pytest.approx(4.0, abs=0.01)
    assert await pair.penalize("pn", "u1", 0) == pytest.approx(4.0, abs=0.1)  # never shortened
    assert await pair.try_acquire("pn", "u2") == 0.0


async def test_redis_pair_concurrent_callers_share_the_bucket(redis_client: Redis, redis_prefix: str) -> None:
    pair = RedisPairLimiter(redis_client, prefix=redis_prefix, interval_s=60, capacity=5)
    results = await asyncio.gather(*(pair.try_acquire("pn", "u1") for _ in range(40)))
    assert results.count(0.0) == 5


# ---------------------------------------------------------------------------------------------------------------
# Tier counter
# ---------------------------------------------------------------------------------------------------------------


async def test_redis_tier_rolling_window(redis_client: Redis, redis_prefix: str) -> None:
    tier = RedisTierCounter(redis_client, prefix=redis_prefix)
    t0 = 1_700_000_000.0
    day = 24 * 3600.0
    for i in range(3):
        assert await tier.admit("pn", f"u{i}", 3, now=t0 + i)
    assert not await tier.admit("pn", "u3", 3, now=t0 + 10)
    assert await tier.admit("pn", "u0", 3, now=t0 + 20 * 3600)  # repeat: free, and refreshed
    assert await tier.count("pn", now=t0 + day + 2) == 1
    assert await tier.admit("pn", "new1", 3, now=t0 + day + 2)
    assert await tier.admit("pn", "new2", 3, now=t0 + day + 2)
    assert not await tier.admit("pn", "new3", 3, now=t0 + day + 2)
    assert await tier.admit("pn", "x", None)  # unlimited
    ttl = await redis_client.ttl(tier.key("pn"))
    assert day < ttl <= day + 60


async def test_redis_tier_server_clock(redis_client: Redis, redis_prefix: str) -> None:
    tier = RedisTierCounter(redis_client, prefix=redis_prefix)
    results = await asyncio.gather(*(tier.admit("pn", f"u{i % 30}", 10) for i in range(120)))
    assert len({f"u{i % 30}" for i, ok in enumerate(results) if ok}) == 10
    assert await tier.count("pn") == 10


# ---------------------------------------------------------------------------------------------------------------
# Factory
# ---------------------------------------------------------------------------------------------------------------


async def test_make_limiters_redis(redis_client: Redis, redis_prefix: str, redis_url: str) -> None:
    limiters = make_limiters(redis_url, prefix=redis_prefix)
    try:
        assert isinstance(limiters.throughput, RedisThroughputLimiter)
        assert isinstance(limiters.pair, RedisPairLimiter)
        assert isinstance(limiters.tier, RedisTierCounter)
        assert await limiters.throughput.acquire("pn", 80) == 0.0
        assert await limiters.pair.try_acquire("pn", "u") == 0.0
        assert await limiters.tier.admit("pn", "u", 250)
    finally:
        await limiters.aclose()
