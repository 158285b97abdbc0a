"""In-process token buckets for the HTTP intake (`waflow.server.intake`): per client address, per API key, global.

A bucket holds up to `burst` tokens and gains `rate` per second; a request takes one. They live in the memory
of one `waflow serve` process: several processes behind a load balancer each keep their own (an address gets
the budget once per process it reaches). Every bucket reads the time from an injectable `clock` (seconds,
monotonic), so tests move time instead of sleeping.

Client addresses are keys after `address_key`: an IPv4 address as it is, an IPv6 address by its /64 (what one
subscriber usually holds, so an attacker cannot rotate through the addresses of their own prefix), an
IPv4-mapped IPv6 address as the IPv4 address. `BucketTable` keeps at most `max_entries` keys (the least
recently used go first), so a flood from many addresses cannot grow it without bound.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable

Clock = Callable[[], float]


class TokenBucket:
    __slots__ = ("burst", "rate", "stamp", "tokens")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("a token bucket needs rate > 0 and burst >= 1")
        self.rate = rate
        self.burst = float(burst)
        self.tokens = float(burst)
        self.stamp = now

    def _refill(self, now: float) -> None:
        if now > self.stamp:
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now

    def take(self, now: float) -> float:
        """0.0 when a token was taken; else the seconds until one will be there (nothing taken)."""
        self._refill(now)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate

    def empty(self, now: float) -> bool:
        """Whether the next `take` would be refused."""
        self._refill(now)
        return self.tokens < 1.0


def retry_after(wait_s: float) -> int:
    """The `Retry-After` seconds for a wait: whole seconds, at least 1."""
    return max(1, math.ceil(wait_s))


class BucketTable:
    """One bucket per key, created full on first use; at most `max_entries` keys (least recently used dropped)."""

    def __init__(self, rate: float, burst: int, *, clock: Clock = time.monotonic, max_entries: int = 100_000) -> None:
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self.max_entries = max_entries
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, key: str) -> float:
        """0.0 when `key` had a token (taken); else the seconds until it will have one."""
        now = self.clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(self.rate, self.burst, now)
            if len(self._buckets) > self.max_entries:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        return bucket.take(now)

    def empty(self, key: str) -> bool:
        """Whether `key` is out of tokens now (an unknown key is not: it would start full)."""
        bucket = self._buckets.get(key)
        return bucket is not None and bucket.empty(self.clock())

    def wait(self, key: str) -> float:
        """Seconds until `key` has a token (0.0 if it has one now); takes nothing."""
        bucket = self._buckets.get(key)
        if bucket is None:
            return 0.0
        now = self.clock()
        bucket._refill(now)
        return 0.0 if bucket.tokens >= 1.0 else (1.0 - bucket.tokens) / bucket.rate


class GlobalBucket:
    """One bucket for the whole process (the intake ceiling)."""

    def __init__(self, rate: float, burst: int, *, clock: Clock = time.monotonic) -> None:
        self.clock = clock
        self._bucket = TokenBucket(rate, burst, clock())

    def take(self) -> float:
        return self._bucket.take(self.clock())


@functools.lru_cache(maxsize=8192)
def address_key(address: str) -> str:
    """The key a client address is limited under (see the module doc); an unparsable one is kept as it is."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((int(ip) >> 64 << 64, 64)))
    return str(ip)


class Pacer:
    """Lets queued callbacks run at most `rate` per second, in arrival order (the slow lane of
    `waflow.server.protocol`: connections from addresses over their failure budget are resumed one by one).

    `admit(go, alive)`: `go()` runs when its turn comes, unless `alive()` says it is gone by then."""

    def __init__(self, rate: float) -> None:
        if rate <= 0:
            raise ValueError("a pacer needs rate > 0")
        self.interval = 1.0 / rate
        self._queue: deque[tuple[Callable[[], None], Callable[[], bool]]] = deque()
        self._task: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        return len(self._queue)

    def admit(self, go: Callable[[], None], alive: Callable[[], bool]) -> None:
        self._queue.append((go, alive))
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        try:
            while self._queue:
                go, alive = self._queue.popleft()
                if not alive():
                    continue
                go()
                await asyncio.sleep(self.interval)
        finally:
            self._task = None

    def close(self) -> None:
        self._queue.clear()
        if self._task is not None:
            self._task.cancel()
            self._task = None
