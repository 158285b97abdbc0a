"""Prometheus metrics of the webhook endpoint (registered once, in the default registry)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

RECEIVED = Counter(
    "webhooks_received",
    "Webhook POSTs by outcome (ok, dead_letter, missing_signature, malformed_signature, "
    "bad_signature, wrong_app, too_large, store_error, overloaded: answered 503 + Retry-After because too many "
    "events were waiting for their inbox commit or their commit was predicted to take too long).",
    ["result"],
)
EVENTS = Counter(
    "webhooks_events", "Events in accepted webhooks by kind and whether they were new.", ["kind", "result"]
)
HANDSHAKES = Counter("webhooks_handshakes", "GET verification handshakes by outcome.", ["result"])
COMMIT_SECONDS = Histogram(
    "webhooks_commit_seconds",
    "Duration of one inbox group commit.",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
)
COMMIT_EVENTS = Histogram(
    "webhooks_commit_events",
    "Events written by one inbox group commit.",
    buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 5000),
)

# pre-bound children: the hot path skips the label lookup
RECEIVED_OK = RECEIVED.labels(result="ok")
RECEIVED_OVERLOADED = RECEIVED.labels(result="overloaded")
