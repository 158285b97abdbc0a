"""Token buckets for the per-number throughput limit and the per-(number, recipient) pair limit."""

from __future__ import annotations

from collections.abc import Callable


class TokenBucket:
    __slots__ = ("capacity", "last", "rate", "tokens")

    def __init__(self, rate: float, capacity: float, now: float) -> None:
        self.rate = rate
        self.capacity = capacity
        self.tokens = capacity
        self.last = now

    def take(self, now: float) -> bool:
        if now > self.last:
            self.tokens = min(self.capacity, self.tokens + (now - self.last) * self.rate)
            self.last = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class Limits:
    """Both limits, read from live settings so a control-plane change applies to the next send."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._numbers: dict[str, TokenBucket] = {}
        self._pairs: dict[tuple[str, str], TokenBucket] = {}

    def reset(self) -> None:
        self._numbers.clear()
        self._pairs.clear()

    def take_throughput(self, phone_id: str, mps: float) -> bool:
        now = self._clock()
        b = self._numbers.get(phone_id)
        if b is None or b.rate != mps:
            # Capacity of one second's worth: a burst of `mps` at once is fine, past it is not.
            b = self._numbers[phone_id] = TokenBucket(mps, max(mps, 1.0), now)
        return b.take(now)

    def take_pair(self, phone_id: str, recipient: str, rate: float, burst: int) -> bool:
        now = self._clock()
        key = (phone_id, recipient)
        b = self._pairs.get(key)
        if b is None or b.rate != rate or b.capacity != burst:
            b = self._pairs[key] = TokenBucket(rate, float(burst), now)
        return b.take(now)
