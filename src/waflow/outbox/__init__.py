"""The outbox: sends outbound rows durably, in per-recipient order, within the platform's limits.

    from waflow.outbox import OutboxDispatcher, DispatcherConfig, make_limiters

    async with store.begin() as conn:                       # the caller's transaction
        oid = await store.outbox.enqueue(conn, pnid, OutboundMessage(to=wa_id, type="text",
                                         content={"body": "hi"}), contact_key=wa_id, business_initiated=False)
    dispatcher = OutboxDispatcher(store, client, limiters=make_limiters(redis_url),
                                  config=DispatcherConfig(rate_per_s=80))
    async with dispatcher.running():
        ...

Modules: `dispatcher` (claim → checks → limits → send → outcome), `recorder` (batched outcome writes),
`retry` (policy by error class), `window` (24 h window and fallback template), `templates` (template
cache and parameter check), `campaigns` (bulk sends), `metrics` (Prometheus), `limits*` (rate limiters).
"""

from waflow.outbox.campaigns import (
    CampaignProgress,
    campaign_progress,
    enqueue_campaign,
    enqueue_message,
    pause_campaign,
    resume_campaign,
    template_content,
)
from waflow.outbox.dispatcher import DispatcherConfig, OutboxDispatcher
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
from waflow.outbox.retry import Decision, RetryPolicy, Verdict, classify_code
from waflow.outbox.templates import TemplateCache, TemplateProblem, check_template
from waflow.outbox.window import WindowVerdict, check_window

__all__ = [
    "DEFAULT_WINDOW_GUARD_S",
    "PAIR_CAPACITY",
    "PAIR_INTERVAL_S",
    "TIER_LIMITS",
    "TIER_WINDOW_S",
    "CampaignProgress",
    "Decision",
    "DispatcherConfig",
    "InMemoryPairLimiter",
    "InMemoryThroughputLimiter",
    "InMemoryTierCounter",
    "Limiters",
    "OutboxDispatcher",
    "PairLimiter",
    "RedisPairLimiter",
    "RedisThroughputLimiter",
    "RedisTierCounter",
    "Reservation",
    "RetryPolicy",
    "TemplateCache",
    "TemplateProblem",
    "ThroughputLimiter",
    "TierCounter",
    "Verdict",
    "WindowVerdict",
    "campaign_progress",
    "check_template",
    "check_window",
    "classify_code",
    "enqueue_campaign",
    "enqueue_message",
    "gcra_params",
    "make_limiters",
    "max_in_window",
    "pause_campaign",
    "penalty_delay_s",
    "resume_campaign",
    "template_content",
    "tier_limit",
]
