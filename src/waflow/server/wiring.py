"""Wake-ups between the parts of one process, so work moves on at once instead of at the next poll.

A webhook that stored new user messages wakes the engine (status webhooks, ~3 per reply, do not: each
wake-up is an engine round, and on SQLite a round queues for the single write lock); timers that fired wake
the engine; an engine round that applied events wakes the dispatchers (the replies it wrote are due).
Polling stays as the fallback (and is what other processes rely on).
"""

from __future__ import annotations

from collections.abc import Callable

from waflow.engine.runtime.timers import TimerScheduler
from waflow.engine.runtime.worker import EngineWorker
from waflow.webhooks import WebhookReceiver
from waflow.webhooks.persist import WriteOutcome


def wake_on_messages(wake: Callable[[], None]) -> Callable[[WriteOutcome], None]:
    """An `on_stored` hook calling `wake` when the webhook stored at least one new message."""

    def on_stored(outcome: WriteOutcome) -> None:
        if outcome.by_kind.get(("message", True)):
            wake()

    return on_stored


def connect(
    engine: EngineWorker,
    *,
    receiver: WebhookReceiver | None,
    timers: TimerScheduler | None,
    notify_outbox: Callable[[], None],
) -> None:
    """Wire the wake-ups of one process's parts."""
    engine.on_applied = notify_outbox
    if receiver is not None:
        receiver.on_stored = wake_on_messages(engine.notify)
    if timers is not None:
        timers.on_fired = engine.notify
