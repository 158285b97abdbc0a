"""Send-rate limiters the outbox dispatcher asks before every send.

Three limits guard a WhatsApp business number (reference §8):

* **Throughput** — at most N messages/s per phone number id (80 by default, up to 1,000), counted across every
  worker process together. :class:`ThroughputLimiter` hands out *reservations*: each call books the next free
  slot (GCRA theoretical arrival time) and says how long to sleep until it, so concurrent callers end up spaced
  exactly one interval apart without retry loops, and a dispatcher can book a batch in one round trip.
* **Pair rate** — one message per 6 s to one user, with a burst of 45. :class:`PairLimiter` never reserves
  when it refuses: a busy recipient is skipped (the caller learns when to come back) so it never stalls the
  others. :meth:`PairLimiter.penalize` drains the bucket when Meta answered 131056 anyway.
* **Messaging tier** — distinct users reached by business-initiated conversations in a moving 24 h.
  :class:`TierCounter` admits a recipient if it is already counted or if there is room, atomically.

Each has an in-process implementation here (one event loop, or threads of one process) and a Redis
implementation in :mod:`waflow.outbox.limits_redis` with the same semantics, shared by all processes.
:func:`make_limiters` picks one set or the other.

All throughput/pair arithmetic is in integer microseconds: float spacing of ``1/rate`` accumulates rounding
error, and ``rate`` slots spaced ``1/rate`` apart could then fit inside a 1-second window. Intervals are rounded
*up*, so rounding only ever makes the limiter slightly more conservative.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = [
    "DEFAULT_WINDOW_GUARD_S",
    "PAIR_CAPACITY",
    "PAIR_INTERVAL_S",
    "TIER_LIMITS",
    "TIER_WINDOW_S",
    "InMemoryPairLimiter",
    "InMemorySendGate",
    "InMemoryThroughputLimiter",
    "InMemoryTierCounter",
    "LimiterUnavailable",
    "Limiters",
    "PairLimiter",
    "Reservation",
    "SendGate",
    "ThroughputLimiter",
    "TierCounter",
    "gate_params",
    "gcra_params",
    "make_limiters",
    "max_in_window",
    "penalty_delay_s",
    "tier_limit",
]

US = 1_000_000


class LimiterUnavailable(RuntimeError):
    """The shared limiter state (Redis) cannot be reached. The limits are shared by every process, so nothing is
    sent until it answers again: the dispatcher pauses and hands its claimed rows back."""

#: Extra length of the window the throughput limiter keeps clear, in seconds. The limiter guarantees at most
#: ``rate`` *reserved slots* in any window of 1 s + guard, i.e. ``rate`` slots span at least 1.005 s. Callers
#: wake up from ``asyncio.sleep`` late by up to a millisecond or so (epoll rounds its timeout up to whole ms),
#: and not equally late each time; without the guard a late send followed by a punctual one ``rate`` slots later
#: could put ``rate + 1`` actual sends into one second as Meta or the emulator count them. The cost is
#: ``guard`` of throughput (0.5 %: 80 → 79.6 msg/s, 1,000 → 995 msg/s).
DEFAULT_WINDOW_GUARD_S = 0.005

#: Meta's pair rate limit: one message per 6 s to one user, bursts of up to 45 (reference §8).
PAIR_INTERVAL_S = 6.0
PAIR_CAPACITY = 45
#: 131056 backoff: 4^attempt seconds, but never shorter than the pair interval and never absurdly long.
PAIR_MAX_PENALTY_S = 3600.0

#: Messaging tiers count distinct users over a moving 24 h.
TIER_WINDOW_S = 24 * 3600.0

#: Messaging tier name (as the Graph API reports it) → distinct users per moving 24 h; ``None`` = no limit.
#: ``TIER_1K`` is the pre-2025 name of ``TIER_2K``'s step and keeps its old value. ``TIER_NOT_SET`` is what a
#: fresh number reports before Meta assigned anything; a new portfolio starts at 250, so that is assumed.
TIER_LIMITS: Mapping[str, int | None] = MappingProxyType(
    {
        "TIER_50": 50,
        "TIER_250": 250,
        "TIER_NOT_SET": 250,
        "TIER_1K": 1_000,
        "TIER_2K": 2_000,
        "TIER_10K": 10_000,
        "TIER_100K": 100_000,
        "TIER_UNLIMITED": None,
    }
)


def tier_limit(name: str) -> int | None:
    """The distinct-users limit of a messaging tier name (``"TIER_2K"`` → 2000, ``"TIER_UNLIMITED"`` → None).

    Raises ``ValueError`` naming the known tiers for anything else: a typo must not silently mean "unlimited".
    """
    try:
        return TIER_LIMITS[name.strip().upper()]
    except KeyError:
        raise ValueError(f"unknown messaging tier {name!r}; known tiers: {', '.join(TIER_LIMITS)}") from None


def max_in_window(times_us: Iterable[int], window_us: int = US) -> int:
    """The most instants inside any half-open window ``[t, t + window_us)`` — how a receiver counting sends per
    second (sliding or fixed) would see them. Used by the tests and the bench to check the throughput promise."""
    times = sorted(times_us)
    best = lo = 0
    for hi, t in enumerate(times):
        while times[lo] <= t - window_us:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def _monotonic_us() -> int:
    return time.monotonic_ns() // 1000


# --------------------------------------------------------------------------------------------------------------
# Throughput: GCRA with reservations
# --------------------------------------------------------------------------------------------------------------


def gcra_params(rate_per_s: float, burst: int = 1, window_guard_s: float = DEFAULT_WINDOW_GUARD_S) -> tuple[int, int]:
    """Emission interval and burst tolerance (both µs) that keep any 1-second window at most ``rate`` slots.

    GCRA with interval T and tolerance τ = (burst-1)·T lets n slots fall in a half-open window of length W only
    if (n-1)·T - τ < W. Spacing exactly 1/rate (T = 1/R) therefore gives R slots per window with burst 1, but
    R + burst - 1 with a larger burst: a full burst followed by the steady stream overshoots the first second.
    So a burst is paid for with sustained rate: T = W / (R - burst + 1), which makes R + 1 slots need
    R·T - τ = W, i.e. they never fit. Burst 1 (the default, and what a dispatcher wants) costs nothing; burst b
    lowers the sustained rate to R - b + 1 while still allowing b sends at once after idle. W is 1 s plus the
    window guard (see ``DEFAULT_WINDOW_GUARD_S``).

    A non-integer rate is floored: a window holds a whole number of sends, and ceil would exceed the rate. Rates
    below 1/s (only sensible for tests) use T = W / rate with burst 1.
    """
    if not rate_per_s > 0 or not math.isfinite(rate_per_s):
        raise ValueError(f"rate_per_s must be a positive number, got {rate_per_s!r}")
    if window_guard_s < 0:
        raise ValueError(f"window_guard_s must be >= 0, got {window_guard_s!r}")
    cap: float = math.floor(rate_per_s) if rate_per_s >= 1 else rate_per_s
    max_burst = max(1, math.floor(rate_per_s))
    if not 1 <= burst <= max_burst:
        raise ValueError(f"burst must be between 1 and {max_burst} for rate {rate_per_s}/s, got {burst!r}")
    window_us = US + round(window_guard_s * US)
    interval_us = max(1, math.ceil(window_us / (cap - burst + 1)))
    return interval_us, (burst - 1) * interval_us


@dataclass(frozen=True, slots=True)
class Reservation:
    """``count`` consecutive throughput slots booked by one call, on the limiter's clock (µs).

    Slot i (0-based) may go at ``max(now_us, base_us + i*interval_us - tau_us)``. The clock is the limiter's own:
    monotonic time for the in-process limiter, the Redis server's ``TIME`` for the shared one, so go times of
    different processes are directly comparable. Callers normally only need :attr:`waits`.
    """

    now_us: int
    base_us: int
    interval_us: int
    tau_us: int
    count: int

    @property
    def go_at_us(self) -> list[int]:
        """The instant each slot may be used, in the limiter's clock (µs)."""
        first = self.base_us - self.tau_us
        return [max(self.now_us, first + i * self.interval_us) for i in range(self.count)]

    @property
    def waits(self) -> list[float]:
        """Seconds from the decision until each slot may be used (0.0 = now); non-decreasing."""
        return [(t - self.now_us) / US for t in self.go_at_us]

    @property
    def wait(self) -> float:
        """Seconds until the first slot."""
        return max(0, self.base_us - self.tau_us - self.now_us) / US


@runtime_checkable
class ThroughputLimiter(Protocol):
    """Messages/s per key (a phone number id), shared by everyone holding the same limiter backend.

    Every call *reserves*: the slot is booked even though the caller must still sleep until it, so callers never
    retry and never starve each other, and N concurrent callers are served in arrival order one interval apart.
    A reservation that is not used is simply lost (the limiter errs on the slow side). Guarantee, for any
    ``burst``: the go times of all reservations on one key never put more than ``floor(rate_per_s)`` slots in any
    window of 1 s (+ the window guard), whichever processes made them. All calls on one key should pass the same
    ``rate_per_s`` and ``burst``; changing them takes effect from the next slot on.
    """

    async def reserve(self, key: str, n: int, rate_per_s: float, burst: int = 1) -> Reservation:
        """Book the next ``n`` slots of ``key`` in one step (one round trip for Redis)."""
        ...

    async def acquire(self, key: str, rate_per_s: float, burst: int = 1) -> float:
        """Book one slot; return the seconds to sleep before sending (0.0 = go now)."""
        ...

    async def acquire_many(self, key: str, n: int, rate_per_s: float, burst: int = 1) -> list[float]:
        """Book ``n`` slots; return the seconds to sleep before each of the n sends (non-decreasing)."""
        ...

    async def acquire_wait(self, key: str, rate_per_s: float, burst: int = 1) -> float:
        """Book one slot and sleep until it (see ``wait_for_slot``); return the seconds it took. The usual call."""
        ...

    async def wait_for_slot(self, key: str, rate_per_s: float, burst: int = 1, *, strict: bool = False) -> Reservation:
        """Book one slot and sleep until it; return the slot used. ``strict``: rebook when woken too late."""
        ...


#: How many times a strict ``wait_for_slot`` books a fresh slot after waking up too late before it just goes.
MAX_REBOOKS = 3


class _ThroughputBase:
    """The derived calls, written once over ``reserve`` so both backends share them exactly."""

    _guard: float

    async def reserve(self, key: str, n: int, rate_per_s: float, burst: int = 1) -> Reservation:
        raise NotImplementedError

    async def acquire(self, key: str, rate_per_s: float, burst: int = 1) -> float:
        return (await self.reserve(key, 1, rate_per_s, burst)).wait

    async def acquire_many(self, key: str, n: int, rate_per_s: float, burst: int = 1) -> list[float]:
        return (await self.reserve(key, n, rate_per_s, burst)).waits

    async def wait_for_slot(self, key: str, rate_per_s: float, burst: int = 1, *, strict: bool = False) -> Reservation:
        """Book one slot, sleep until it, return it. ``strict``: rebook if this task woke up too late to use it.

        Booked slots always respect the window, but a send happens when its task *wakes*, and a busy event loop
        or an overloaded host wakes tasks late — by 5-25 ms at the 98th percentile on a loaded 2-CPU machine —
        and a late send can bunch with the punctual ones after it. The default accepts that (it is the same
        order as network jitter on the way to Meta, and 130429 is retried) and keeps full throughput.

        With ``strict=True`` a task that wakes more than the window guard after its slot gives the slot up (it is
        lost, never reused) and books a new one. Every send then happens within ``guard`` of a booked slot, and
        since booked slots never put more than ``rate`` into 1 s + guard, actual sends never put more than
        ``rate`` into any 1 s either: host stalls cost throughput instead of bunching. Lateness is measured
        against the *earliest* local instant the slot can correspond to (request sent + wait) while the sleep
        runs to the *latest* (reply received + wait): never early, and a slow round trip counts as lateness.
        After ``MAX_REBOOKS`` rebooks (round trips persistently slower than the guard) the task goes anyway
        rather than livelock.
        """
        guard_us = round(self._guard * US)
        for attempt in range(MAX_REBOOKS + 1):
            sent = _monotonic_us()
            reservation = await self.reserve(key, 1, rate_per_s, burst)
            received = _monotonic_us()
            offset = reservation.go_at_us[0] - reservation.now_us
            if offset > 0:
                await asyncio.sleep((received + offset - _monotonic_us()) / US)
            if not strict or _monotonic_us() - (sent + offset) <= guard_us or attempt == MAX_REBOOKS:
                return reservation
        raise AssertionError("unreachable")  # the loop always returns on its last attempt

    async def acquire_wait(self, key: str, rate_per_s: float, burst: int = 1) -> float:
        started = _monotonic_us()
        await self.wait_for_slot(key, rate_per_s, burst)
        return (_monotonic_us() - started) / US


def _check_n(n: int) -> None:
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n!r}")


class InMemoryThroughputLimiter(_ThroughputBase):
    """GCRA reservations for one process. Safe for many tasks of one loop and for threads (a lock guards state).

    ``clock_us`` (monotonic microseconds) is injectable for tests.
    """

    def __init__(
        self, *, window_guard_s: float = DEFAULT_WINDOW_GUARD_S, clock_us: Callable[[], int] = _monotonic_us
    ) -> None:
        self._guard = window_guard_s
        self._clock = clock_us
        self._tat: dict[str, int] = {}
        self._lock = threading.Lock()
        self._ops = 0

    async def reserve(self, key: str, n: int, rate_per_s: float, burst: int = 1) -> Reservation:
        _check_n(n)
        interval, tau = gcra_params(rate_per_s, burst, self._guard)
        with self._lock:
            now = self._clock()
            base = max(self._tat.get(key, now), now)
            self._tat[key] = base + n * interval
            self._ops += 1
            if self._ops % 4096 == 0:
                # Keys whose TAT is past are indistinguishable from absent ones; drop them so memory stays bounded.
                self._tat = {k: v for k, v in self._tat.items() if v > now}
        return Reservation(now, base, interval, tau, n)


# --------------------------------------------------------------------------------------------------------------
# Pair rate: non-reserving token bucket (GCRA form)
# --------------------------------------------------------------------------------------------------------------


def penalty_delay_s(attempt: int, interval_s: float = PAIR_INTERVAL_S, max_s: float = PAIR_MAX_PENALTY_S) -> float:
    """Backoff after a 131056 answer: 4^attempt s (attempt 0, 1, 2, …), at least one pair interval, at most max_s.

    The reference says: wait at least 6 s, then back off 4^X s.
    """
    if attempt < 0:
        raise ValueError(f"attempt must be >= 0, got {attempt!r}")
    raw = 4.0**attempt if attempt < 64 else math.inf
    return min(max(raw, interval_s), max_s)


@runtime_checkable
class SendGate(Protocol):
    """The throughput limit at the moment of sending: never more than ``rate`` sends in any sliding second.

    The throughput limiter paces sends by booking slots ahead, but a send happens when its task *wakes*, and a
    busy host wakes tasks late, so late sends can bunch with punctual ones (measured: 23-26 sends in one second
    at 20 msg/s with three dispatchers on a loaded 2-core machine). The gate is asked right before each send,
    with nothing to wait for between it and the request: it records the send and answers 0 when fewer than
    ``floor(rate)`` sends were recorded in the last window of ``floor(rate) / rate`` s (1 s at whole rates) plus
    the window guard; otherwise it records nothing and answers the seconds until the oldest leaves the window.
    Pacing stays the slot schedule's job (the gate lets a full window's worth through at once); the gate only
    holds the cap, so it costs throughput only where a stall would have bunched sends.
    """

    async def admit(self, key: str, rate_per_s: float) -> float:
        """0: go now (recorded); else the seconds to wait before asking again (nothing recorded)."""
        ...


def gate_params(rate_per_s: float, guard_s: float = DEFAULT_WINDOW_GUARD_S) -> tuple[int, int]:
    """(sends allowed per window, window in µs) for a rate: whole rates are per second; below 1/s one send per
    1/rate s. The window is lengthened by the guard and rounded up, so rounding never lets more through."""
    if not rate_per_s > 0:
        raise ValueError(f"rate must be > 0, got {rate_per_s!r}")
    limit = max(1, math.floor(rate_per_s))
    return limit, math.ceil(limit / rate_per_s * US + guard_s * US)


class InMemorySendGate:
    """`SendGate` for one process: a log of the last window's send times per key."""

    def __init__(
        self, *, window_guard_s: float = DEFAULT_WINDOW_GUARD_S, clock_us: Callable[[], int] = _monotonic_us
    ) -> None:
        self._guard = window_guard_s
        self._clock = clock_us
        self._sent: dict[str, deque[int]] = {}
        self._lock = threading.Lock()

    async def admit(self, key: str, rate_per_s: float) -> float:
        limit, window = gate_params(rate_per_s, self._guard)
        with self._lock:
            now = self._clock()
            log = self._sent.setdefault(key, deque())
            while log and log[0] <= now - window:
                log.popleft()
            if len(log) < limit:
                log.append(now)
                return 0.0
            return (log[0] + window - now) / US


@runtime_checkable
class PairLimiter(Protocol):
    """Messages to one recipient from one number: token bucket, ``1/interval_s`` per s, ``capacity`` burst.

    ``try_acquire`` takes a token if there is one and returns 0.0; otherwise it takes nothing and returns the
    seconds until a token will be there, so a dispatcher moves on to other recipients instead of queueing
    behind a busy one.
    """

    async def try_acquire(self, number: str, recipient: str) -> float:
        """0.0 = a token was taken, send now; > 0 = nothing taken, retry after that many seconds."""
        ...

    async def penalize(self, number: str, recipient: str, attempt: int) -> float:
        """Meta answered 131056 anyway: empty the bucket and hold sends for :func:`penalty_delay_s` (attempt).

        Never shortens a wait already in force. Returns the seconds until the next send is allowed.
        """
        ...


def _pair_params(interval_s: float, capacity: int) -> tuple[int, int]:
    if not interval_s > 0 or not math.isfinite(interval_s):
        raise ValueError(f"interval_s must be a positive number, got {interval_s!r}")
    if capacity < 1:
        raise ValueError(f"capacity must be >= 1, got {capacity!r}")
    interval_us = max(1, math.ceil(interval_s * US))
    return interval_us, (capacity - 1) * interval_us


class InMemoryPairLimiter:
    """Pair-rate token buckets for one process (GCRA form: one integer per pair instead of tokens + timestamp).

    A bucket with theoretical arrival time TAT holds ``capacity - ceil((TAT - now) / interval)`` tokens; a send
    is allowed when ``TAT - tau <= now`` and moves TAT one interval on. Full buckets are dropped periodically,
    which keeps memory proportional to recently messaged users.
    """

    def __init__(
        self,
        *,
        interval_s: float = PAIR_INTERVAL_S,
        capacity: int = PAIR_CAPACITY,
        max_penalty_s: float = PAIR_MAX_PENALTY_S,
        clock_us: Callable[[], int] = _monotonic_us,
    ) -> None:
        self._interval, self._tau = _pair_params(interval_s, capacity)
        self.interval_s = interval_s
        self.capacity = capacity
        self.max_penalty_s = max_penalty_s
        self._clock = clock_us
        self._tat: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()
        self._ops = 0

    def _sweep(self, now: int) -> None:
        self._ops += 1
        if self._ops % 4096 == 0:
            self._tat = {k: v for k, v in self._tat.items() if v > now}

    async def try_acquire(self, number: str, recipient: str) -> float:
        with self._lock:
            now = self._clock()
            self._sweep(now)
            tat = max(self._tat.get((number, recipient), now), now)
            allow_at = tat - self._tau
            if allow_at > now:
                return (allow_at - now) / US
            self._tat[(number, recipient)] = tat + self._interval
            return 0.0

    async def penalize(self, number: str, recipient: str, attempt: int) -> float:
        delay_us = math.ceil(penalty_delay_s(attempt, self.interval_s, self.max_penalty_s) * US)
        with self._lock:
            now = self._clock()
            # TAT = now + delay + tau: no token until now + delay, then refill from empty at the normal rate.
            tat = max(self._tat.get((number, recipient), 0), now + delay_us + self._tau)
            self._tat[(number, recipient)] = tat
            return (tat - self._tau - now) / US


# --------------------------------------------------------------------------------------------------------------
# Messaging tier: distinct recipients over a moving 24 h
# --------------------------------------------------------------------------------------------------------------


@runtime_checkable
class TierCounter(Protocol):
    """Distinct recipients of business-initiated conversations per scope over a moving window (24 h).

    ``number`` is the scope the tier applies to: the phone number id under the pre-October-2025 rule, or the
    business portfolio id (shared by all its numbers) under the current one — the dispatcher decides.
    ``now`` is wall-clock epoch seconds; ``None`` uses the backend's clock (the Redis server's for Redis, so all
    processes agree).
    """

    async def admit(self, number: str, recipient: str, tier_limit: int | None, now: float | None = None) -> bool:
        """May a business-initiated conversation to ``recipient`` be opened?

        True if the recipient was already counted within the window (free; its time is refreshed to ``now`` so it
        stays counted as long as Meta counts it), or if fewer than ``tier_limit`` distinct recipients are counted
        (it is then counted). False otherwise, and nothing changes. Check and insert are atomic, so concurrent
        callers, in any process, never take more than ``tier_limit`` slots. ``tier_limit=None`` (unlimited)
        admits without recording anything: there is nothing to enforce and a 100K+ user set is not free.
        """
        ...

    async def count(self, number: str, now: float | None = None) -> int:
        """Distinct recipients counted within the window ending at ``now``."""
        ...


def _check_limit(tier_limit: int | None) -> None:
    if tier_limit is not None and tier_limit < 0:
        raise ValueError(f"tier_limit must be >= 0 or None, got {tier_limit!r}")


class InMemoryTierCounter:
    """Tier counter for one process: per scope, recipients in order of their last counted time."""

    def __init__(self, *, window_s: float = TIER_WINDOW_S, clock: Callable[[], float] = time.time) -> None:
        self.window_s = window_s
        self._clock = clock
        # Insertion order == time order as long as ``now`` does not go backwards, so expiry pops from the front.
        self._opened: dict[str, OrderedDict[str, float]] = {}
        self._lock = threading.Lock()

    def _prune(self, number: str, now: float) -> OrderedDict[str, float]:
        opened = self._opened.setdefault(number, OrderedDict())
        cutoff = now - self.window_s
        while opened:
            recipient, at = next(iter(opened.items()))
            if at > cutoff:
                break
            del opened[recipient]
        return opened

    async def admit(self, number: str, recipient: str, tier_limit: int | None, now: float | None = None) -> bool:
        _check_limit(tier_limit)
        if tier_limit is None:
            return True
        with self._lock:
            t = self._clock() if now is None else now
            opened = self._prune(number, t)
            at = opened.get(recipient)
            if at is not None and at > t - self.window_s:
                if t > at:
                    opened[recipient] = t
                    opened.move_to_end(recipient)
                return True
            if len(opened) < tier_limit:
                opened[recipient] = t
                opened.move_to_end(recipient)
                return True
            return False

    async def count(self, number: str, now: float | None = None) -> int:
        with self._lock:
            t = self._clock() if now is None else now
            cutoff = t - self.window_s
            return sum(1 for at in self._prune(number, t).values() if at > cutoff)


# --------------------------------------------------------------------------------------------------------------
# Factory
# --------------------------------------------------------------------------------------------------------------


@dataclass(slots=True)
class Limiters:
    """The three limiters a dispatcher needs, from one backend. ``aclose`` releases the Redis connection."""

    throughput: ThroughputLimiter
    pair: PairLimiter
    tier: TierCounter
    redis: Redis | None = None
    gate: SendGate = field(default_factory=InMemorySendGate)  # the cap at the moment of sending (`SendGate`)

    async def problem(self) -> str | None:
        """None when the limiters can be consulted (always, in-process); else why not (Redis unreachable)."""
        if self.redis is None:
            return None
        from waflow.outbox.limits_redis import redis_problem

        return await redis_problem(self.redis)

    async def aclose(self) -> None:
        if self.redis is not None:
            await self.redis.aclose()


def make_limiters(
    redis_url: str | None,
    *,
    prefix: str = "waflow:limits",
    window_guard_s: float = DEFAULT_WINDOW_GUARD_S,
    pair_interval_s: float = PAIR_INTERVAL_S,
    pair_capacity: int = PAIR_CAPACITY,
    tier_window_s: float = TIER_WINDOW_S,
    redis_max_connections: int = 64,
) -> Limiters:
    """Redis-backed limiters shared by all processes when ``redis_url`` is given, in-process ones otherwise.

    The in-process set is only correct when one process sends for a number (the embedded ``waflow serve``).
    Creating the Redis set does not connect; the first call does.
    """
    if redis_url is None:
        return Limiters(
            throughput=InMemoryThroughputLimiter(window_guard_s=window_guard_s),
            pair=InMemoryPairLimiter(interval_s=pair_interval_s, capacity=pair_capacity),
            tier=InMemoryTierCounter(window_s=tier_window_s),
            gate=InMemorySendGate(window_guard_s=window_guard_s),
        )
    from redis.asyncio import BlockingConnectionPool, Redis
    from redis.asyncio.retry import Retry
    from redis.backoff import ExponentialBackoff
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    from waflow.outbox.limits_redis import RedisPairLimiter, RedisSendGate, RedisThroughputLimiter, RedisTierCounter

    # A blocking pool: the default one raises "Too many connections" once more than max_connections calls are in
    # flight, which a dispatcher with many concurrent senders would hit; here extra callers wait for a connection.
    # Bounded waits (a call never hangs on a dead server), a health check of connections idle for a while, and one
    # retry on a fresh connection: after an outage the pool's stale connections fail once each and reconnect,
    # instead of failing one row after another.
    pool = BlockingConnectionPool.from_url(
        redis_url, max_connections=redis_max_connections, timeout=10, socket_timeout=2.0, socket_connect_timeout=2.0,
        health_check_interval=5, retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 2),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
    )
    client: Redis = Redis.from_pool(pool)
    return Limiters(
        throughput=RedisThroughputLimiter(client, prefix=prefix, window_guard_s=window_guard_s),
        pair=RedisPairLimiter(client, prefix=prefix, interval_s=pair_interval_s, capacity=pair_capacity),
        tier=RedisTierCounter(client, prefix=prefix, window_s=tier_window_s),
        redis=client,
        gate=RedisSendGate(client, prefix=prefix, window_guard_s=window_guard_s),
    )
