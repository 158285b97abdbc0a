"""Process-level metrics beside the parts' own (webhooks, outbox: already in the default registry).

Gauges read from the store at scrape time (messages by status: the outbox counters; inbox backlog: the
open events only — `waflow.store.gauges`), and the engine's and status processor's progress, exported
from the running parts.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import REGISTRY, Gauge
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from waflow.server.parts import Parts
from waflow.store.gauges import scrape_counts
from waflow.store.types import utcnow

MESSAGES_BY_STATUS = Gauge("waflow_messages", "Outbound messages in the store by delivery status.", ["status"])
INBOX_OPEN = Gauge("waflow_inbox_open_events", "Inbound events not processed yet, by kind and state.",
                   ["kind", "state"])
INBOX_LAG = Gauge("waflow_inbox_oldest_open_seconds", "Age of the oldest inbound event not processed yet (0: none).")
OUTBOX_LAG = Gauge("waflow_outbox_oldest_due_seconds",
                   "How long the oldest due outbound row has waited past its due time unclaimed (0: none).")


class _PartsCollector(Collector):
    def __init__(self) -> None:
        self.parts: Parts | None = None

    def collect(self) -> Iterator[CounterMetricFamily]:
        parts = self.parts
        events = CounterMetricFamily("waflow_engine_events_processed", "Inbox events the engine applied.")
        statuses = CounterMetricFamily("waflow_status_events_applied", "Status webhooks applied to messages.")
        sent = CounterMetricFamily("waflow_dispatcher_sent", "Messages this process's dispatchers got accepted.")
        if parts is not None:
            events.add_metric([], float(parts.engine.processed if parts.engine else 0))
            processor = parts.status_processor or (parts.receiver.status_processor if parts.receiver else None)
            statuses.add_metric([], float(processor.applied if processor else 0))
            sent.add_metric([], float(sum(d.sent for d in parts.dispatchers)))
        yield events
        yield statuses
        yield sent


_collector = _PartsCollector()
REGISTRY.register(_collector)


def track(parts: Parts) -> None:
    """Export this process's parts (the last one built wins: one process, one set of parts)."""
    _collector.parts = parts


async def refresh_gauges(parts: Parts) -> None:
    async with parts.store.read() as conn:
        counts = await scrape_counts(conn)
    by_status, open_rows = counts.messages_by_status, counts.open_events
    for status in ("queued", "accepted", "sent", "delivered", "read", "played", "failed"):
        MESSAGES_BY_STATUS.labels(status).set(by_status.get(status, 0))
    INBOX_OPEN.clear()
    for kind, state, count in open_rows:
        INBOX_OPEN.labels(kind, state).set(count)
    now = utcnow()
    INBOX_LAG.set(max(0.0, (now - counts.oldest_open_event_at).total_seconds()) if counts.oldest_open_event_at else 0)
    OUTBOX_LAG.set(max(0.0, (now - counts.oldest_due_at).total_seconds()) if counts.oldest_due_at else 0)
