"""Prometheus metrics of the webhook endpoint (registered once, in the default registry)."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from prometheus_client import Counter, Histogram

from waflow.store.statuses import AppliedResult, StatusOutcome

log = logging.getLogger("waflow.webhooks")

RECEIVED = Counter(
    "webhooks_received",
    "Webhook POSTs by outcome (ok, dead_letter, missing_signature, malformed_signature, "
    "bad_signature, wrong_app, unknown_number (events of a number not configured here, not stored; one per "
    "event), too_large, store_error, overloaded: answered 503 + Retry-After because too many "
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

FOREIGN_STATUSES = Counter(
    "webhooks_statuses_foreign",
    "Status webhooks naming a message id of another number than the one that sent it: kept, never applied.",
)


def note_foreign(results: Iterable[AppliedResult]) -> None:
    """Count (and log) the statuses `apply_many` refused to apply to another number's message."""
    n = sum(1 for r in results if r.outcome is StatusOutcome.FOREIGN)
    if n:
        FOREIGN_STATUSES.inc(n)
        log.warning("%d status webhook(s) named a message of another number: not applied", n)


# pre-bound children: the hot path skips the label lookup
RECEIVED_OK = RECEIVED.labels(result="ok")
RECEIVED_OVERLOADED = RECEIVED.labels(result="overloaded")
