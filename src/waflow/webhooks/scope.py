"""Scoped webhooks: what a body may file is limited to the numbers (and WABAs) this deployment serves.

Every number a body names must be configured and belong to the app whose secret signed it (the signature
check's `app_serves`). Events and contacts of a phone number id the configuration does not name — a number
of the app that is not configured here, or a configured one spelled differently (`0106…`, `+106…`, a
trailing space) — are dropped before anything is written: never filed under that id, counted as
`webhooks_received_total{result="unknown_number"}` (one per event) and logged (at most once a minute per
number). WABA-level events (template status updates) are scoped the same way by WABA id when any number
names its WABA in the configuration. The POST is still answered 200: the body is authentic, and a retry by
Meta would carry the same ids again.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Iterable

from waflow.providers.cloud import ParsedWebhook
from waflow.webhooks import metrics
from waflow.webhooks.config import WebhookConfig

log = logging.getLogger("waflow.webhooks")
_LOG_EVERY_S = 60.0


class NumberScope:
    """The numbers and WABAs one deployment serves, and the filter that keeps a parsed body within them."""

    def __init__(self, config: WebhookConfig) -> None:
        self.numbers = frozenset(config.numbers)
        self.wabas = frozenset(n.waba_id for n in config.numbers.values() if n.waba_id)
        self._logged: dict[str, float] = {}

    def _serves_waba(self, waba_id: str) -> bool:
        return not self.wabas or waba_id in self.wabas

    def keep(self, parsed: ParsedWebhook) -> ParsedWebhook:
        """`parsed` without the events and contacts of numbers (WABAs) this deployment does not serve."""
        unknown_numbers = parsed.phone_number_ids - self.numbers
        unknown_wabas = {w for w in parsed.waba_ids if not self._serves_waba(w)}
        if not unknown_numbers and not unknown_wabas:
            return parsed
        kept, dropped = [], 0
        for ev in parsed.events:
            ok = ev.phone_number_id in self.numbers if ev.phone_number_id is not None else self._serves_waba(ev.waba_id)
            if ok:
                kept.append(ev)
            else:
                dropped += 1
        if dropped:
            metrics.RECEIVED.labels(result="unknown_number").inc(dropped)
            self._log(sorted(unknown_numbers) + [f"WABA {w}" for w in sorted(unknown_wabas)], dropped)
        return dataclasses.replace(
            parsed,
            events=kept,
            contacts=[c for c in parsed.contacts if c.phone_number_id in self.numbers],
            phone_number_ids=parsed.phone_number_ids & self.numbers,
            waba_ids={w for w in parsed.waba_ids if self._serves_waba(w)},
        )

    def _log(self, names: Iterable[str], dropped: int) -> None:
        now = time.monotonic()
        fresh = [n for n in names if now - self._logged.get(n, -_LOG_EVERY_S) >= _LOG_EVERY_S]
        if not fresh:
            return
        for name in fresh:
            self._logged[name] = now
        shown = ", ".join(repr(n)[:40] for n in fresh[:5])
        log.warning("webhook names phone number id(s) not configured here (%s): %d event(s) not stored", shown,
                    dropped)
