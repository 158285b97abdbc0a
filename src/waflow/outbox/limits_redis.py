"""Redis implementations of the send-rate limiters, shared by every process that uses the same Redis.

Each decision is one Lua script, so read-check-write is atomic on the server no matter how many processes ask.
Scripts are sent once (``SCRIPT LOAD``) and then called by SHA (``EVALSHA``); redis-py's ``Script`` reloads
them transparently if the server lost its script cache (restart, ``SCRIPT FLUSH``).

Time comes from the Redis server's ``TIME`` inside the script, never from the callers: workers on different
machines have different clocks, and a GCRA schedule is only as good as the single clock it is computed on.
(Redis ≥ 5 replicates script *effects*, so calling ``TIME`` in a script that writes is allowed.)

Every key gets a TTL just past the moment its state becomes indistinguishable from "absent", so idle numbers and
recipients cost nothing. Each script touches exactly one key, so this also works on Redis Cluster.

Lua numbers are doubles: microseconds since the epoch (~1.7e15) are below 2^53 and stay exact, but Lua's default
number-to-string conversion keeps only 14 significant digits, so every number written back goes through
``string.format('%.0f')`` (or ``'%.6f'`` for second-based scores).
"""

from __future__ import annotations

import itertools
import math
import secrets
from typing import Any

from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from waflow.outbox.limits import (
    DEFAULT_WINDOW_GUARD_S,
    PAIR_CAPACITY,
    PAIR_INTERVAL_S,
    PAIR_MAX_PENALTY_S,
    TIER_WINDOW_S,
    US,
    LimiterUnavailable,
    Reservation,
    _check_limit,
    _check_n,
    _pair_params,
    _ThroughputBase,
    gate_params,
    gcra_params,
    penalty_delay_s,
)


class _Script:
    """A registered script whose Redis errors surface as `LimiterUnavailable` (the dispatcher's one signal that
    the shared limit cannot be consulted), without the driver's traceback or the server's address."""

    __slots__ = ("_script",)

    def __init__(self, script: AsyncScript) -> None:
        self._script = script

    async def __call__(self, *, keys: list[str], args: list[Any]) -> Any:
        try:
            return await self._script(keys=keys, args=args)
        except (RedisError, OSError) as exc:
            raise LimiterUnavailable(f"Redis did not answer ({type(exc).__name__})") from None


def _script(client: Redis, source: str) -> _Script:
    return _Script(client.register_script(source))


async def redis_problem(client: Redis) -> str | None:
    """None when Redis answers a PING; else why not (for readiness and the dispatcher's pause)."""
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        return f"Redis did not answer ({type(exc).__name__})"
    return None


__all__ = ["RedisPairLimiter", "RedisSendGate", "RedisThroughputLimiter", "RedisTierCounter"]

# Reserve n slots. KEYS[1] = TAT (µs, server clock). ARGV = interval_us, n. Returns {now_us, base_us}; the client
# derives the go times (Reservation), which keeps the reply two integers even for a batch of 1,000.
_RESERVE_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local new_tat = tat + n * interval
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1000)
return {now, tat}
"""

# The send gate: a log of the window's sends. KEYS[1] = sorted set (member nonce, score µs, server clock).
# ARGV = limit, window_us, nonce. Returns {0 (admitted, recorded) or the µs until the oldest leaves the window, now}.
_GATE_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%.0f', now - window))
if redis.call('ZCARD', KEYS[1]) < limit then
  redis.call('ZADD', KEYS[1], string.format('%.0f', now), ARGV[3])
  redis.call('PEXPIRE', KEYS[1], math.ceil(window / 1000) + 1000)
  return {0, now}
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {math.max(1, tonumber(oldest[2]) + window - now), now}
"""

# Take one pair token if there is one. KEYS[1] = TAT. ARGV = interval_us, tau_us.
# Returns 0 (taken) or the µs until a token is there (nothing written).
_PAIR_TAKE_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tau = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local allow_at = tat - tau
if allow_at > now then return allow_at - now end
local new_tat = tat + interval
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1000)
return 0
"""

# Empty the bucket and hold sends for delay_us. KEYS[1] = TAT. ARGV = delay_us, tau_us. Returns µs until allowed.
_PAIR_PENALIZE_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local delay = tonumber(ARGV[1])
local tau = tonumber(ARGV[2])
local target = now + delay + tau
local tat = tonumber(redis.call('GET', KEYS[1])) or 0
if tat < target then
  tat = target
  redis.call('SET', KEYS[1], string.format('%.0f', tat), 'PX', math.ceil((tat - now) / 1000) + 1000)
end
return tat - tau - now
"""

# Admit a recipient. KEYS[1] = sorted set recipient → last counted time (epoch s).
# ARGV = recipient, limit, now ('' = server TIME), window_s. Returns 1 (admitted) or 0.
_TIER_ADMIT_LUA = """
local now
if ARGV[3] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
else
  now = tonumber(ARGV[3])
end
local window = tonumber(ARGV[4])
local cutoff = now - window
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%.6f', cutoff))
local score = string.format('%.6f', now)
local ttl = math.ceil(window) + 60
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  redis.call('ZADD', KEYS[1], 'GT', score, ARGV[1])
  redis.call('EXPIRE', KEYS[1], ttl)
  return 1
end
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], score, ARGV[1])
  redis.call('EXPIRE', KEYS[1], ttl)
  return 1
end
return 0
"""

# Count recipients inside the window. KEYS[1] = sorted set. ARGV = now ('' = server TIME), window_s.
_TIER_COUNT_LUA = """
local now
if ARGV[1] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
else
  now = tonumber(ARGV[1])
end
return redis.call('ZCOUNT', KEYS[1], '(' .. string.format('%.6f', now - tonumber(ARGV[2])), '+inf')
"""


class RedisThroughputLimiter(_ThroughputBase):
    """GCRA reservations in Redis: one TAT key per phone number id, one script call per reservation (or batch)."""

    def __init__(
        self, redis: Redis, *, prefix: str = "waflow:limits", window_guard_s: float = DEFAULT_WINDOW_GUARD_S
    ) -> None:
        self._redis = redis
        self._prefix = prefix
        self._guard = window_guard_s
        self._script: _Script = _script(redis, _RESERVE_LUA)

    def key(self, key: str) -> str:
        return f"{self._prefix}:tp:{key}"

    async def reserve(self, key: str, n: int, rate_per_s: float, burst: int = 1) -> Reservation:
        _check_n(n)
        interval, tau = gcra_params(rate_per_s, burst, self._guard)
        now, base = await self._script(keys=[self.key(key)], args=[interval, n])
        return Reservation(int(now), int(base), interval, tau, n)


class RedisPairLimiter:
    """Pair-rate token buckets in Redis, same semantics as :class:`~waflow.outbox.limits.InMemoryPairLimiter`."""

    def __init__(
        self,
        redis: Redis,
        *,
        prefix: str = "waflow:limits",
        interval_s: float = PAIR_INTERVAL_S,
        capacity: int = PAIR_CAPACITY,
        max_penalty_s: float = PAIR_MAX_PENALTY_S,
    ) -> None:
        self._redis = redis
        self._prefix = prefix
        self._interval, self._tau = _pair_params(interval_s, capacity)
        self.interval_s = interval_s
        self.capacity = capacity
        self.max_penalty_s = max_penalty_s
        self._take: _Script = _script(redis, _PAIR_TAKE_LUA)
        self._penalize: _Script = _script(redis, _PAIR_PENALIZE_LUA)

    def key(self, number: str, recipient: str) -> str:
        return f"{self._prefix}:pair:{number}:{recipient}"

    async def try_acquire(self, number: str, recipient: str) -> float:
        wait_us = await self._take(keys=[self.key(number, recipient)], args=[self._interval, self._tau])
        return int(wait_us) / US

    async def penalize(self, number: str, recipient: str, attempt: int) -> float:
        delay_us = math.ceil(penalty_delay_s(attempt, self.interval_s, self.max_penalty_s) * US)
        wait_us = await self._penalize(keys=[self.key(number, recipient)], args=[delay_us, self._tau])
        return int(wait_us) / US


class RedisTierCounter:
    """Tier counter in Redis: a sorted set per scope, member = recipient, score = last counted time (epoch s)."""

    def __init__(self, redis: Redis, *, prefix: str = "waflow:limits", window_s: float = TIER_WINDOW_S) -> None:
        self._redis = redis
        self._prefix = prefix
        self.window_s = window_s
        self._admit: _Script = _script(redis, _TIER_ADMIT_LUA)
        self._count: _Script = _script(redis, _TIER_COUNT_LUA)

    def key(self, number: str) -> str:
        return f"{self._prefix}:tier:{number}"

    @staticmethod
    def _now_arg(now: float | None) -> str:
        return "" if now is None else repr(float(now))

    async def admit(self, number: str, recipient: str, tier_limit: int | None, now: float | None = None) -> bool:
        _check_limit(tier_limit)
        if tier_limit is None:
            return True
        args: list[str | int] = [recipient, tier_limit, self._now_arg(now), repr(float(self.window_s))]
        return int(await self._admit(keys=[self.key(number)], args=args)) == 1

    async def count(self, number: str, now: float | None = None) -> int:
        args = [self._now_arg(now), repr(float(self.window_s))]
        return int(await self._count(keys=[self.key(number)], args=args))


class RedisSendGate:
    """`SendGate` shared by every process on one Redis: the window's sends as a sorted set per number, decided
    on the server's clock by one script (admit and record are one atomic step)."""

    def __init__(self, client: Redis, *, prefix: str = "waflow:limits",
                 window_guard_s: float = DEFAULT_WINDOW_GUARD_S) -> None:
        self._client = client
        self._prefix = prefix
        self._guard = window_guard_s
        self._script: _Script = _script(client, _GATE_LUA)
        self._nonce = f"{secrets.token_hex(6)}:"
        self._count = itertools.count()

    async def admit(self, key: str, rate_per_s: float) -> float:
        return (await self.admit_at(key, rate_per_s))[0]

    async def admit_at(self, key: str, rate_per_s: float) -> tuple[float, int]:
        """`admit`, and the server's clock (µs) at the decision: when the send was recorded, if it was."""
        limit, window = gate_params(rate_per_s, self._guard)
        member = f"{self._nonce}{next(self._count)}"
        wait, now = await self._script(keys=[f"{self._prefix}:gate:{key}"], args=[limit, window, member])
        return int(wait) / US, int(now)

    def __repr__(self) -> str:
        return f"RedisSendGate(prefix={self._prefix!r})"
