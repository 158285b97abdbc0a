"""In-process limiters and the limiter arithmetic; the Redis versions are in test_limits_redis.py.

The throughput promise is checked the way Meta and the emulator would see it: from the instants sends were
allowed to go, count the most that fall inside any 1-second window (half-open, sliding).
"""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from waflow.outbox import (
    InMemoryPairLimiter,
    InMemoryThroughputLimiter,
    InMemoryTierCounter,
    PairLimiter,
    ThroughputLimiter,
    TierCounter,
    gcra_params,
    make_limiters,
    max_in_window,
    penalty_delay_s,
    tier_limit,
)

US = 1_000_000


# ---------------------------------------------------------------------------------------------------------------
# Throughput arithmetic (deterministic, fake clock)
# ---------------------------------------------------------------------------------------------------------------


def test_gcra_params_integer_microseconds_rounded_up() -> None:
    assert gcra_params(80, window_guard_s=0) == (12_500, 0)
    assert gcra_params(1000, window_guard_s=0) == (1_000, 0)
    assert gcra_params(3, window_guard_s=0) == (333_334, 0)  # up, never down: 3 slots span > 1 s
    assert gcra_params(80) == (12_563, 0)  # default guard: 1.005 s / 80, rounded up
    assert gcra_params(10, burst=4, window_guard_s=0) == (142_858, 3 * 142_858)  # 10 - 4 + 1 = 7/s sustained
    assert gcra_params(80.9, window_guard_s=0) == (12_500, 0)  # non-integer rates are floored


@pytest.mark.parametrize(
    ("rate", "burst"), [(0, 1), (-1, 1), (math.nan, 1), (math.inf, 1), (10, 0), (10, 11), (0.5, 2)]
)
def test_gcra_params_rejects_nonsense(rate: float, burst: int) -> None:
    with pytest.raises(ValueError):
        gcra_params(rate, burst)


async def _saturate(limiter: ThroughputLimiter, clock: Any, rate: float, burst: int, seconds: float) -> list[int]:
    """Go times (µs) of callers that keep the limiter saturated for ``seconds`` of fake time, starting idle."""
    out: list[int] = []
    end = clock.now_us + round(seconds * US)
    while True:
        reservation = await limiter.reserve("pn", 1, rate, burst)
        go = reservation.go_at_us[0]
        if go >= end:
            return out
        out.append(go)


@pytest.mark.parametrize(("rate", "burst"), [(80, 1), (1000, 1), (200, 1), (10, 4), (80, 20), (7, 7)])
async def test_window_never_exceeds_rate_even_with_burst(fake_clock: Any, rate: int, burst: int) -> None:
    limiter = InMemoryThroughputLimiter(window_guard_s=0, clock_us=fake_clock)
    go = await _saturate(limiter, fake_clock, rate, burst, 3.0)
    assert go[:burst] == [fake_clock.now_us] * burst  # the burst goes at once after idle...
    assert max_in_window(go) == rate  # ...and still no second ever holds more than `rate`
    sustained = rate - burst + 1
    assert len(go) == pytest.approx(burst + 3 * sustained, abs=2)  # the price of the burst is sustained rate


def test_naive_burst_would_overshoot_the_window() -> None:
    """Why bursts cost sustained rate: textbook GCRA (T = 1/R, τ = (b-1)·T) lets R + b - 1 slots into 1 s."""
    rate, burst = 10, 4
    interval = US // rate
    tau = (burst - 1) * interval
    tat, go = 0, []
    for _ in range(100):  # saturated, starting idle at t = 0
        go.append(max(0, tat - tau))
        tat = max(tat, 0) + interval
    assert max_in_window(go) == rate + burst - 1


@settings(max_examples=200, deadline=None)
@given(
    rate=st.integers(min_value=1, max_value=1000),
    burst_frac=st.floats(min_value=0, max_value=1),
    gaps_ms=st.lists(st.integers(min_value=0, max_value=1500), min_size=1, max_size=300),
    batch=st.integers(min_value=1, max_value=5),
    guard_ms=st.sampled_from([0, 5]),
)
def test_window_property_for_any_arrival_pattern(
    rate: int, burst_frac: float, gaps_ms: list[int], batch: int, guard_ms: int
) -> None:
    """Whatever the arrival pattern (idle gaps, bursts, batches), no window of 1 s + guard holds > rate slots."""
    burst = 1 + round(burst_frac * (rate - 1))
    now = [0]
    limiter = InMemoryThroughputLimiter(window_guard_s=guard_ms / 1000, clock_us=lambda: now[0])
    go: list[int] = []

    async def run() -> None:
        for gap in gaps_ms:
            now[0] += gap * 1000
            go.extend((await limiter.reserve("pn", batch, rate, burst)).go_at_us)

    asyncio.run(run())
    assert max_in_window(go, US + guard_ms * 1000) <= rate
    assert all(g >= 0 for g in go)
    assert go == sorted(go)  # reservations are served in arrival order


async def test_acquire_many_books_consecutive_slots(fake_clock: Any) -> None:
    limiter = InMemoryThroughputLimiter(window_guard_s=0, clock_us=fake_clock)
    assert await limiter.acquire_many("pn", 4, 1000) == [0.0, 0.001, 0.002, 0.003]
    assert await limiter.acquire("pn", 1000) == pytest.approx(0.004)
    assert await limiter.acquire("other", 1000) == 0.0  # keys are independent
    fake_clock.advance(1.0)
    assert await limiter.acquire("pn", 1000) == 0.0  # idle time is not banked beyond the burst
    assert await limiter.acquire("pn", 1000) == pytest.approx(0.001)
    with pytest.raises(ValueError):
        await limiter.acquire_many("pn", 0, 1000)


async def test_acquire_many_with_burst(fake_clock: Any) -> None:
    limiter = InMemoryThroughputLimiter(window_guard_s=0, clock_us=fake_clock)
    waits = await limiter.acquire_many("pn", 6, 10, burst=3)  # sustained 8/s → 125 ms apart after the burst
    assert waits == [0.0, 0.0, 0.0, 0.125, 0.25, 0.375]


# ---------------------------------------------------------------------------------------------------------------
# Throughput in real time: concurrent callers sleeping until their slot
# ---------------------------------------------------------------------------------------------------------------


async def _monotonic_now() -> int:
    return time.monotonic_ns() // 1000


async def test_in_process_concurrent_acquirers_stay_within_rate(run_acquirers: Any, check_throughput: Any) -> None:
    limiter = InMemoryThroughputLimiter()
    seconds = 1.5
    (go200, _), (go80, _), (go_strict, woke_strict) = await asyncio.gather(
        run_acquirers(limiter, "pn-200", 200, 25, seconds, _monotonic_now),
        run_acquirers(limiter, "pn-80", 80, 25, seconds, _monotonic_now),
        run_acquirers(limiter, "pn-strict", 200, 25, seconds, _monotonic_now, strict=True),
    )
    check_throughput(go200, 200, seconds, gcra_params(200)[0])
    check_throughput(go80, 80, seconds, gcra_params(80)[0])
    check_strict(go_strict, woke_strict, 200, seconds)


def check_strict(go: list[int], woke: list[int], rate: int, seconds: float) -> None:
    """Strict mode: the instants the tasks actually went (as a receiver counts sends) stay within the rate too.

    Throughput is only loosely bounded: on an overloaded host, late wake-ups give their slots up.
    """
    assert max_in_window(go) <= rate
    assert max_in_window(woke) <= rate
    assert len(woke) >= 0.5 * rate * seconds


async def test_acquire_wait_sleeps_until_the_slot() -> None:
    limiter = InMemoryThroughputLimiter(window_guard_s=0)
    t0 = time.monotonic()
    waits = [await limiter.acquire_wait("pn", 20) for _ in range(3)]
    assert waits[0] < 0.01
    assert time.monotonic() - t0 >= 0.1 - 0.002  # two intervals of 50 ms
    assert sum(waits) == pytest.approx(time.monotonic() - t0, abs=0.01)


# ---------------------------------------------------------------------------------------------------------------
# Pair limiter (fake clock: Meta's real 1/6 s and 45 burst)
# ---------------------------------------------------------------------------------------------------------------


async def test_pair_burst_then_one_per_six_seconds(fake_clock: Any) -> None:
    pair = InMemoryPairLimiter(clock_us=fake_clock)
    assert [await pair.try_acquire("pn", "u1") for _ in range(45)] == [0.0] * 45
    assert await pair.try_acquire("pn", "u1") == pytest.approx(6.0)
    assert await pair.try_acquire("pn", "u1") == pytest.approx(6.0)  # refusals reserve nothing
    assert await pair.try_acquire("pn", "u2") == 0.0  # another recipient is unaffected
    assert await pair.try_acquire("pn2", "u1") == 0.0  # so is the same user from another number
    fake_clock.advance(3.0)
    assert await pair.try_acquire("pn", "u1") == pytest.approx(3.0)
    fake_clock.advance(3.0)
    assert await pair.try_acquire("pn", "u1") == 0.0
    assert await pair.try_acquire("pn", "u1") == pytest.approx(6.0)
    fake_clock.advance(60.0)  # 10 tokens back
    assert [await pair.try_acquire("pn", "u1") for _ in range(11)] == [0.0] * 10 + [pytest.approx(6.0)]
    fake_clock.advance(3600.0)  # refills to capacity, not beyond
    results = [await pair.try_acquire("pn", "u1") for _ in range(46)]
    assert results.count(0.0) == 45


async def test_pair_penalize_backs_off_four_to_the_attempt(fake_clock: Any) -> None:
    pair = InMemoryPairLimiter(clock_us=fake_clock)
    assert await pair.penalize("pn", "u1", 0) == pytest.approx(6.0)  # 4^0 = 1 s, but never below the interval
    assert await pair.try_acquire("pn", "u1") == pytest.approx(6.0)
    assert await pair.penalize("pn", "u1", 2) == pytest.approx(16.0)
    assert await pair.penalize("pn", "u1", 0) == pytest.approx(16.0)  # never shortens a wait in force
    fake_clock.advance(16.0)
    assert await pair.try_acquire("pn", "u1") == 0.0
    assert await pair.try_acquire("pn", "u1") == pytest.approx(6.0)  # the bucket restarts empty
    assert await pair.try_acquire("pn", "u2") == 0.0


def test_penalty_delay() -> None:
    assert [penalty_delay_s(a) for a in range(5)] == [6.0, 6.0, 16.0, 64.0, 256.0]
    assert penalty_delay_s(10) == 3600.0
    assert penalty_delay_s(10_000) == 3600.0
    assert penalty_delay_s(0, interval_s=0.2) == 1.0
    with pytest.raises(ValueError):
        penalty_delay_s(-1)


def test_pair_rejects_bad_config() -> None:
    with pytest.raises(ValueError):
        InMemoryPairLimiter(capacity=0)
    with pytest.raises(ValueError):
        InMemoryPairLimiter(interval_s=0)


# ---------------------------------------------------------------------------------------------------------------
# Tier counter
# ---------------------------------------------------------------------------------------------------------------

DAY = 24 * 3600.0


async def test_tier_admits_limit_distinct_recipients_repeats_free() -> None:
    tier = InMemoryTierCounter()
    t0 = 1_700_000_000.0
    assert [await tier.admit("pn", f"u{i}", 3, now=t0 + i) for i in range(3)] == [True] * 3
    assert await tier.admit("pn", "u3", 3, now=t0 + 10) is False
    assert await tier.admit("pn", "u0", 3, now=t0 + 10) is True  # already counted: free
    assert await tier.admit("pn2", "u3", 3, now=t0 + 10) is True  # scopes are independent
    assert await tier.count("pn", now=t0 + 10) == 3


async def test_tier_window_rolls_and_repeats_refresh() -> None:
    tier = InMemoryTierCounter()
    t0 = 1_700_000_000.0
    for i in range(3):
        assert await tier.admit("pn", f"u{i}", 3, now=t0 + i)
    assert await tier.admit("pn", "u0", 3, now=t0 + 20 * 3600)  # u0 contacted again 20 h later
    # 24 h after the first contacts, u1 and u2 drop out; u0 stays counted from its latest contact.
    assert await tier.count("pn", now=t0 + DAY + 2) == 1
    assert await tier.admit("pn", "new1", 3, now=t0 + DAY + 2)
    assert await tier.admit("pn", "new2", 3, now=t0 + DAY + 2)
    assert not await tier.admit("pn", "new3", 3, now=t0 + DAY + 2)
    assert await tier.count("pn", now=t0 + 20 * 3600 + DAY) == 2  # u0's refreshed time expires too


async def test_tier_unlimited_and_zero() -> None:
    tier = InMemoryTierCounter()
    assert all([await tier.admit("pn", f"u{i}", None) for i in range(1000)])
    assert await tier.count("pn") == 0  # unlimited records nothing
    assert not await tier.admit("pn", "u", 0)
    with pytest.raises(ValueError):
        await tier.admit("pn", "u", -1)


async def test_tier_concurrent_callers_take_exactly_the_limit() -> None:
    tier = InMemoryTierCounter()
    results = await asyncio.gather(*(tier.admit("pn", f"u{i % 40}", 25) for i in range(200)))
    admitted = {f"u{i % 40}" for i, ok in enumerate(results) if ok}
    assert len(admitted) == 25
    assert await tier.count("pn") == 25


@pytest.mark.parametrize(
    ("name", "limit"),
    [("TIER_250", 250), ("TIER_2K", 2000), ("TIER_10K", 10_000), ("TIER_100K", 100_000), ("TIER_UNLIMITED", None)],
)
def test_tier_names(name: str, limit: int | None) -> None:
    assert tier_limit(name) == limit


def test_unknown_tier_name_is_an_error() -> None:
    with pytest.raises(ValueError, match="TIER_2K"):
        tier_limit("TIER_2000")


# ---------------------------------------------------------------------------------------------------------------
# Factory
# ---------------------------------------------------------------------------------------------------------------


async def test_make_limiters_in_process() -> None:
    limiters = make_limiters(None)
    assert isinstance(limiters.throughput, InMemoryThroughputLimiter)
    assert isinstance(limiters.pair, InMemoryPairLimiter)
    assert isinstance(limiters.tier, InMemoryTierCounter)
    assert isinstance(limiters.throughput, ThroughputLimiter)
    assert isinstance(limiters.pair, PairLimiter)
    assert isinstance(limiters.tier, TierCounter)
    await limiters.aclose()
