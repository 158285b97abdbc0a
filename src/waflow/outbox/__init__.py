"""The outbox: sends outbound rows durably, in per-recipient order, within the platform's limits.

    from waflow.outbox import OutboxDispatcher, DispatcherConfig, make_limiters

    async with store.begin() as conn:                       # the caller's transaction
        oid = await store.outbox.enqueue(conn, pnid, OutboundMessage(to=wa_id, type="text",
                                         content={"body": "hi"}), contact_key=wa_id, business_initiated=False)
    dispatcher = OutboxDispatcher(store, client, limiters=make_limiters(redis_url),
                                  config=DispatcherConfig(rate_per_s=80))
    async with dispatcher.running():
        ...

The unknown-outcome rule — "never twice, never out of order", and where that cannot be promised:

- A send's outcome is unknown when the request may have reached Meta but no answer came back (a timeout, a
  dropped connection) or when the process died holding a row it had started to send (its lease, `[outbox]
  lease_s`, renewed by a heartbeat while it lives, expired: the next dispatcher finds it). Every send passes
  the send fence first (`OutboxRepository.mark_sending`, batched by `_fence`): a row whose lease expires
  without the mark was never tried and is due again at once, whatever happened to its process. A row with
  an unknown outcome stays `queued`, at the head of its recipient's queue, so nothing behind it leaves;
  `outcome_unknown_since` is set and the metric `waflow_outbox_messages_total{outcome="unknown"}` counts it.
- Every send carries `biz_opaque_callback_data = wf:<outbox id>`. A status webhook with it settles the row
  as accepted — the first send went out, and it is never sent again (`outcome="settled_by_status"` when
  that happened while a resend was about to go).
- Otherwise the row is resent, once all of these hold: `[outbox] unknown_grace_s` has passed since the
  outcome became unknown *to a running dispatcher* (after a crash the grace starts when the restarted
  process recovers the row, i.e. when it can hear status webhooks again, not at the dead one's lease);
  every status webhook received before the grace ended has been applied (a restarted or busy process
  works through its webhook backlog first: `waflow_outbox_deferred_total{reason="status_backlog"}`); the
  webhook intake of the same process, where there is one (`waflow serve`), has kept up for `INTAKE_CALM_S`
  (no slow answer, no 503, no redelivered status: a status still at Meta is not in the inbox yet); and
  the row, read again just before the resend, is still unsettled.
- Worst case a user can see: the first send did go out, but Meta's status webhooks for it reached no
  waflow process within the grace (all were down longer than Meta kept retrying, or Meta delayed them past
  the grace): the message arrives twice, the copies back to back (the recipient's later messages wait
  for the resend). If its status arrives during the resend's own HTTP call, both are accepted (the second
  acceptance is logged, "already has provider id"); the row leaves the queue, but the recipient's next
  message is not claimed while the row is still leased (in flight), so it still leaves after the copy.

Consent: `consent` holds the one rule of what may reach a contact who opted out; the dispatcher asks it for
every row just before the send, `enqueue_message` (API, CLI), the engine's flow start and agent replies ask it
at the door. Refused rows fail with class `opted_out`; a campaign counts them as skipped.

Modules: `consent` (the opt-out rule), `dispatcher` (claim → checks → limits → send → outcome), `recorder`
(batched outcome writes), `retry` (policy by error class), `window` (24 h window and fallback template),
`templates` (template cache and parameter check), `campaigns` (bulk sends), `metrics` (Prometheus), `limits*`
(rate limiters).
"""

from waflow.outbox.campaigns import (
    CampaignProgress,
    ConsentRefused,
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
    InMemorySendGate,
    InMemoryThroughputLimiter,
    InMemoryTierCounter,
    Limiters,
    LimiterUnavailable,
    PairLimiter,
    Reservation,
    SendGate,
    ThroughputLimiter,
    TierCounter,
    gate_params,
    gcra_params,
    make_limiters,
    max_in_window,
    penalty_delay_s,
    tier_limit,
)
from waflow.outbox.limits_redis import RedisPairLimiter, RedisSendGate, RedisThroughputLimiter, RedisTierCounter
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
    "ConsentRefused",
    "Decision",
    "DispatcherConfig",
    "InMemoryPairLimiter",
    "InMemorySendGate",
    "InMemoryThroughputLimiter",
    "InMemoryTierCounter",
    "LimiterUnavailable",
    "Limiters",
    "OutboxDispatcher",
    "PairLimiter",
    "RedisPairLimiter",
    "RedisSendGate",
    "RedisThroughputLimiter",
    "RedisTierCounter",
    "Reservation",
    "RetryPolicy",
    "SendGate",
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
    "gate_params",
    "gcra_params",
    "make_limiters",
    "max_in_window",
    "pause_campaign",
    "penalty_delay_s",
    "resume_campaign",
    "template_content",
    "tier_limit",
]
