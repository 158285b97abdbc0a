"""Send-rate limiter decisions per second, in-process and on Redis.

    python -m bench.limits_throughput [--rounds 3] [--seconds 0.5] [--redis-url redis://127.0.0.1:6379/0]
                                      [--no-redis] [--no-pace]

Each figure is the median over ``--rounds`` rounds of as many decisions as fit in ``--seconds``:

* throughput ``acquire`` one at a time (for Redis: one round trip each, so latency-bound), with 64 calls in flight
  (how a dispatcher with many senders uses it), and ``acquire_many`` batches of 100 (slots booked per second);
* pair ``try_acquire`` and tier ``admit`` with 64 calls in flight (many recipients).

The decisions only book slots (nobody sleeps), so this measures the limiter's own cost, which has to be small
next to 1,000 msg/s per number. Unless ``--no-pace``, it then runs 64 senders at 1,000 msg/s through the Redis
limiter for 2 s and prints the rate they achieved and the most sends in any 1-second window.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable

from redis.asyncio import BlockingConnectionPool, Redis

from waflow.outbox import (
    InMemoryPairLimiter,
    InMemoryThroughputLimiter,
    InMemoryTierCounter,
    PairLimiter,
    RedisPairLimiter,
    RedisThroughputLimiter,
    RedisTierCounter,
    ThroughputLimiter,
    TierCounter,
    max_in_window,
)

RATE = 1000.0
CONCURRENCY = 64

Op = Callable[[int], Awaitable[object]]  # one decision; the argument is a running counter (distinct keys)


async def per_second(op: Op, seconds: float, in_flight: int, per_call: int = 1) -> float:
    """Decisions (or slots, with ``per_call``) per second with ``in_flight`` concurrent callers."""
    done = 0
    counter = 0
    deadline = time.perf_counter() + seconds

    async def caller() -> None:
        nonlocal done, counter
        while time.perf_counter() < deadline:
            counter += 1
            await op(counter)
            done += per_call

    started = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(in_flight)))
    return done / (time.perf_counter() - started)


async def median_of(rounds: int, make: Callable[[int], Awaitable[float]]) -> float:
    return statistics.median([await make(r) for r in range(rounds)])


async def bench_set(
    name: str, throughput: ThroughputLimiter, pair: PairLimiter, tier: TierCounter, rounds: int, seconds: float
) -> None:
    rows: list[tuple[str, float, str]] = []

    async def single(r: int) -> float:
        return await per_second(lambda i: throughput.acquire(f"single-{r}", RATE), seconds, 1)

    async def concurrent(r: int) -> float:
        return await per_second(lambda i: throughput.acquire(f"conc-{r}", RATE), seconds, CONCURRENCY)

    async def batch(r: int) -> float:
        return await per_second(lambda i: throughput.acquire_many(f"batch-{r}", 100, RATE), seconds, 1, per_call=100)

    async def pairs(r: int) -> float:
        return await per_second(lambda i: pair.try_acquire(f"pn-{r}", f"u{i % 50_000}"), seconds, CONCURRENCY)

    async def tiers(r: int) -> float:
        return await per_second(lambda i: tier.admit(f"pn-{r}", f"u{i % 5_000}", 2_000), seconds, CONCURRENCY)

    rows.append(("throughput acquire, 1 in flight", await median_of(rounds, single), "decisions/s"))
    rows.append((f"throughput acquire, {CONCURRENCY} in flight", await median_of(rounds, concurrent), "decisions/s"))
    rows.append(("throughput acquire_many(100), 1 in flight", await median_of(rounds, batch), "slots/s"))
    rows.append((f"pair try_acquire, {CONCURRENCY} in flight", await median_of(rounds, pairs), "decisions/s"))
    rows.append((f"tier admit (TIER_2K), {CONCURRENCY} in flight", await median_of(rounds, tiers), "decisions/s"))
    for label, value, unit in rows:
        print(f"  {name:<10} {label:<46} {value:>12,.0f} {unit}")


async def pace(throughput: ThroughputLimiter, redis: Redis, seconds: float = 2.0) -> None:
    """64 senders at 1,000 msg/s through the shared limiter: achieved rate and worst 1-second window."""
    go: list[int] = []
    seconds_now, micros = await redis.time()
    deadline = int(seconds_now) * 1_000_000 + int(micros) + round(seconds * 1_000_000)

    async def sender() -> None:
        while True:
            slot = (await throughput.wait_for_slot("pace", RATE)).go_at_us[0]
            if slot >= deadline:
                return
            go.append(slot)

    await asyncio.gather(*(sender() for _ in range(CONCURRENCY)))
    span = (deadline - min(go)) / 1_000_000
    print(
        f"  redis      paced: {CONCURRENCY} senders at {RATE:,.0f} msg/s for {seconds:.0f} s → "
        f"{len(go) / span:,.1f} msg/s achieved, max {max_in_window(go)} in any 1 s window"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=0.5)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--no-redis", action="store_true")
    parser.add_argument("--no-pace", action="store_true")
    args = parser.parse_args()

    print(f"limiter decisions, median of {args.rounds} rounds of {args.seconds} s each")
    await bench_set(
        "in-process",
        InMemoryThroughputLimiter(),
        InMemoryPairLimiter(),
        InMemoryTierCounter(),
        args.rounds,
        args.seconds,
    )
    if args.no_redis:
        return
    redis = Redis.from_pool(BlockingConnectionPool.from_url(args.redis_url, max_connections=CONCURRENCY))
    prefix = f"waflow-bench:{uuid.uuid4().hex}"
    try:
        await asyncio.gather(*(redis.ping() for _ in range(CONCURRENCY)))  # open the pool before timing
        throughput = RedisThroughputLimiter(redis, prefix=prefix)
        await bench_set(
            "redis",
            throughput,
            RedisPairLimiter(redis, prefix=prefix),
            RedisTierCounter(redis, prefix=prefix),
            args.rounds,
            args.seconds,
        )
        if not args.no_pace:
            await pace(throughput, redis)
    finally:
        keys = [key async for key in redis.scan_iter(match=f"{prefix}:*", count=1000)]
        for start in range(0, len(keys), 1000):
            await redis.delete(*keys[start : start + 1000])
        await redis.aclose()


if __name__ == "__main__":
    asyncio.run(main())
