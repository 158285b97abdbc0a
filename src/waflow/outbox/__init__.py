"""The outbox: sends outbound rows within the platform's limits.

Only the rate limiters live here so far; the dispatcher will be added beside them.
"""

from waflow.outbox.limits import (
    DEFAULT_WINDOW_GUARD_S,
    PAIR_CAPACITY,
    PAIR_INTERVAL_S,
    TIER_LIMITS,
    TIER_WINDOW_S,
    InMemoryPairLimiter,
    InMemoryThroughputLimiter,
    InMemoryTierCounter,
    Limiters,
    PairLimiter,
    Reservation,
    ThroughputLimiter,
    TierCounter,
    gcra_params,
    make_limiters,
    max_in_window,
    penalty_delay_s,
    tier_limit,
)
from waflow.outbox.limits_redis import RedisPairLimiter, RedisThroughputLimiter, RedisTierCounter

__all__ = [
    "DEFAULT_WINDOW_GUARD_S",
    "PAIR_CAPACITY",
    "PAIR_INTERVAL_S",
    "TIER_LIMITS",
    "TIER_WINDOW_S",
    "InMemoryPairLimiter",
    "InMemoryThroughputLimiter",
    "InMemoryTierCounter",
    "Limiters",
    "PairLimiter",
    "RedisPairLimiter",
    "RedisThroughputLimiter",
    "RedisTierCounter",
    "Reservation",
    "ThroughputLimiter",
    "TierCounter",
    "gcra_params",
    "make_limiters",
    "max_in_window",
    "penalty_delay_s",
    "tier_limit",
]
