"""Prometheus metrics of the engine's limits (registered once per process, on the default registry)."""

from __future__ import annotations

from prometheus_client import Counter

EXPRESSION_LIMITS = Counter(
    "waflow_engine_expression_limits_total",
    "Templates and expressions stopped by a limit, by limit: work (the work budget of one), time (the deadline "
    "of one), turn_time (all of one event's together). The node fails: the session ends with the error.",
    ["limit"],
)
DEFERRED = Counter(
    "waflow_engine_deferred_total",
    "Contacts whose waiting events were left for later rounds, by reason: turn_share (a backlog taking turns "
    "with other contacts' events), round_time (the round ran out of time). Counted per contact and round; "
    "nothing is lost: the events stay pending, in order.",
    ["reason"],
)
SHED = Counter(
    "waflow_engine_shed_total",
    "Messages set aside unprocessed (state dead, the reason in the event's error), by reason: backlog_cap "
    "(the contact had more than max_pending_per_contact messages waiting; the newest beyond were set aside).",
    ["reason"],
)
