"""Prometheus metrics of the outbox (registered once per process, on the default registry)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

MESSAGES = Counter(
    "waflow_outbox_messages_total",
    "Outbound messages by what happened to a send try: accepted, failed, retry, throttled, unknown, deferred, "
    "settled_by_status (a resend after an unknown outcome made unnecessary by a late status), opted_out (refused: "
    "the contact opted out).",
    ["outcome"],
)
SEND_SECONDS = Histogram(
    "waflow_outbox_send_seconds",
    "Latency of one send call to the provider (request to answer or error).",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
RETRIES = Counter("waflow_outbox_retries_total", "Send tries that will be retried, by error code.", ["code"])
LIMITER_WAIT = Histogram(
    "waflow_outbox_limiter_wait_seconds",
    "Time a send waited for the throughput limiter.",
    buckets=(0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
LIMITER_UP = Gauge(
    "waflow_outbox_limiter_up",
    "1 while the rate limiters answer (in-process: always; Redis: reachable), 0 while sending is paused for it.",
)
GATE_WAITS = Counter(
    "waflow_outbox_rate_gate_waits",
    "Sends held at the send gate because the last sliding second already had the number's rate (late wake-ups "
    "that would have bunched).",
)
DEFERRED = Counter(
    "waflow_outbox_deferred_total",
    "Claimed rows given back without a send, by reason (pair, tier, status_backlog).",
    ["reason"],
)
QUEUE_DEPTH = Gauge(
    "waflow_outbox_queue_depth",
    "Queued outbound rows by waiting reason ('' = due); 'paused': those of paused campaigns (counted under their "
    "own reason too: pausing leaves the rows as they are).",
    ["reason"],
)
IN_FLIGHT = Gauge("waflow_outbox_in_flight", "Rows this process holds a lease on.")
