"""The composition: every part of a waflow process, built from the settings (no I/O here).

`build_parts(settings, role)`: role `serve` has the webhook endpoint (with its status processor), the access
token watch and, unless turned off in `[server]`, the engine, the timer scheduler and the dispatchers; role
`worker` has the engine, the timer scheduler, the dispatchers and a status processor — no HTTP endpoint.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Literal

from waflow.cloudapi import CloudAPIClient, Timeouts
from waflow.config import NumberSettings, Settings
from waflow.engine.runtime.config import Command, CommandAction, EngineConfig, default_commands
from waflow.engine.runtime.timers import TimerScheduler
from waflow.engine.runtime.worker import EngineWorker
from waflow.outbox import DispatcherConfig, Limiters, OutboxDispatcher, RetryPolicy, make_limiters
from waflow.server.token_watch import Clock, TokenWatch
from waflow.server.wiring import connect
from waflow.store import Store
from waflow.webhooks import NumberConfig, StatusProcessor, WebhookConfig, WebhookReceiver

log = logging.getLogger("waflow.server")
Role = Literal["serve", "worker"]


@dataclass
class Parts:
    settings: Settings
    role: Role
    store: Store
    clients: dict[str, CloudAPIClient]
    limiters: Limiters
    dispatchers: list[OutboxDispatcher] = field(default_factory=list)
    receiver: WebhookReceiver | None = None
    status_processor: StatusProcessor | None = None
    engine: EngineWorker | None = None
    timers: TimerScheduler | None = None
    token_watch: TokenWatch | None = None  # `serve` only: checks each number's token at start and daily

    def notify_outbox(self) -> None:
        for dispatcher in self.dispatchers:
            dispatcher.notify()


def engine_config(settings: Settings) -> EngineConfig:
    """Global commands and the http allow-list from the settings, over the engine's defaults."""
    defaults = default_commands()
    actions = {
        "stop": CommandAction.OPT_OUT, "start": CommandAction.OPT_IN,
        "agent": CommandAction.HANDOFF, "restart": CommandAction.RESTART,
    }  # fmt: skip
    replies = {
        CommandAction.OPT_OUT: defaults["stop"].reply, CommandAction.OPT_IN: defaults["start"].reply,
        CommandAction.HANDOFF: defaults["agent"].reply, CommandAction.RESTART: None,
    }  # fmt: skip
    commands: dict[str, Command] = {}
    for name, action in actions.items():
        for word in getattr(settings.commands, name):
            commands[word] = Command(action=action, reply=replies[action])
    engine = settings.engine
    return EngineConfig(
        commands=commands,
        http_allow_hosts=frozenset(settings.http.allow_hosts),
        poll_interval=settings.server.poll_interval_s,
        expression_work=engine.expression_work,
        expression_timeout=engine.expression_timeout_s,
        event_expression_timeout=engine.event_expression_timeout_s,
        turn_share=engine.turn_share,
        max_pending_per_contact=engine.max_pending_per_contact,
        round_seconds=engine.round_time_s,
    )


def webhook_config(settings: Settings, *, status_processor: bool) -> WebhookConfig:
    numbers = {
        n.phone_number_id: NumberConfig(app_secret=n.app_secret, verify_token=n.verify_token, waba_id=n.waba_id)
        for n in settings.numbers
    }
    return WebhookConfig(
        numbers=numbers,
        status_processor=status_processor,
        max_uncommitted_events=settings.server.webhook_max_uncommitted_events,
        max_commit_wait_s=settings.server.webhook_max_commit_wait_s,
    )


def make_client(settings: Settings, number: NumberSettings) -> CloudAPIClient:
    if number.token_is_literal:
        log.warning("numbers[%s].token is written in the configuration: prefer env:VAR or file:/path",
                    number.phone_number_id)
    return CloudAPIClient(
        phone_number_id=number.phone_number_id,
        waba_id=number.waba_id,
        token=number.token_provider(),
        base_url=settings.graph.base_url,
        api_version=settings.graph.api_version,
        timeouts=Timeouts(read=settings.graph.timeout_s, total=settings.graph.timeout_s + 5),
    )


def make_dispatchers(settings: Settings, store: Store, clients: dict[str, CloudAPIClient],
                     limiters: Limiters) -> list[OutboxDispatcher]:
    """One dispatcher per distinct (throughput, tier) among the numbers: each sends for its numbers only."""
    groups: dict[tuple[float, str | None], dict[str, CloudAPIClient]] = {}
    for number in settings.numbers:
        groups.setdefault((number.throughput, number.tier), {})[number.phone_number_id] = clients[
            number.phone_number_id
        ]
    out = []
    for (rate, _tier), group in groups.items():
        tier = settings.number(next(iter(group))).tier_limit
        config = DispatcherConfig(
            rate_per_s=rate, tier_limit=tier, poll_s=settings.server.poll_interval_s,
            lease_s=settings.outbox.lease_s, retry=RetryPolicy(unknown_grace_s=settings.outbox.unknown_grace_s),
        )
        out.append(OutboxDispatcher(store, group, limiters=limiters, config=config))
    return out


def build_parts(
    settings: Settings, role: Role = "serve", *, store: Store | None = None, token_clock: Clock | None = None
) -> Parts:
    """`token_clock`: the time the token watch runs on (tests pass a `ManualClock`)."""
    store = store or Store.open(settings.store_url)
    clients = {n.phone_number_id: make_client(settings, n) for n in settings.numbers}
    limiters = make_limiters(settings.redis_url)
    parts = Parts(settings=settings, role=role, store=store, clients=clients, limiters=limiters)
    background = role == "worker" or settings.server.run_engine
    if role == "serve":
        config = webhook_config(settings, status_processor=True)
        parts.receiver = WebhookReceiver(config, store, path=settings.server.webhook_path)
        parts.token_watch = TokenWatch(settings, clock=token_clock)
    else:
        parts.status_processor = StatusProcessor(store)
    if role == "worker" or settings.server.run_dispatcher:
        parts.dispatchers = make_dispatchers(settings, store, clients, limiters)
        if parts.receiver is not None:  # resends after an unknown outcome wait for this intake to keep up
            for dispatcher in parts.dispatchers:
                dispatcher.intake_calm_for = parts.receiver.writer.calm_for
    if background:
        parts.engine = EngineWorker(store, engine_config(settings))
        parts.timers = TimerScheduler(store)
        connect(parts.engine, receiver=parts.receiver, timers=parts.timers, notify_outbox=parts.notify_outbox)
    return parts
