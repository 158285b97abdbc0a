"""`EngineConfig`: what a deployment tunes — global commands, the step limit, timeouts, the HTTP allow-list."""

from __future__ import annotations

import enum
from datetime import timedelta

from pydantic import BaseModel, ConfigDict, Field, field_validator

from waflow.engine.flows.sandbox import MAX_SECONDS, MAX_WORK, TURN_SECONDS, ExpressionLimits


class CommandAction(enum.StrEnum):
    OPT_OUT = "opt_out"  # no more business-initiated messages; the session ends
    OPT_IN = "opt_in"  # undo an opt-out
    HANDOFF = "handoff"  # a human takes over the conversation
    RESTART = "restart"  # end the session and route the message as a first message
    END = "end"  # end the session, nothing else


class Command(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    action: CommandAction
    reply: str | None = Field(None, description="text sent back (a template over contact/vars/message)")


def default_commands() -> dict[str, Command]:
    return {
        "stop": Command(
            action=CommandAction.OPT_OUT,
            reply="You will not receive messages from us any more. Send START to subscribe again.",
        ),
        "start": Command(action=CommandAction.OPT_IN, reply="Welcome back: you will receive our messages again."),
        "agent": Command(action=CommandAction.HANDOFF, reply="A person will answer you shortly."),
        "restart": Command(action=CommandAction.RESTART),
    }


class EngineConfig(BaseModel):
    """How the engine runs; the defaults suit one embedded process on SQLite."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    commands: dict[str, Command] = Field(
        default_factory=default_commands,
        description="global commands: a whole message equal to the word (trimmed, case-insensitive), "
        "checked before flow routing",
    )
    step_limit: int = Field(50, ge=1, le=10_000, description="non-waiting nodes per event before 'loop'")
    max_call_depth: int = Field(10, ge=1, le=100, description="nested sub-flows")
    session_timeout: timedelta = Field(timedelta(hours=24), description="idle session lifetime (flows may override)")
    stale_after: timedelta = Field(
        timedelta(seconds=60), description="a session 'running' longer than this is recovered"
    )
    http_allow_hosts: frozenset[str] = Field(
        default_factory=frozenset,
        description="hosts / IPs an http node may reach even when they resolve to private or loopback addresses "
        "(the cloud metadata address is refused always)",
    )
    http_max_attempts: int = Field(3, ge=1, le=10, description="tries of one http node across crash recoveries")
    http_max_response_bytes: int = Field(1_000_000, ge=1_024)
    http_concurrency: int = Field(32, ge=1, le=1_000)
    # 16: on SQLite a round is one transaction, so its size is every event's latency; since a round costs a
    # fixed ~5 statements plus per-event Python (see `batch`), 16 already gives > 1,000 msg/s at a p99 round of
    # ~20 ms (`bench.engine_flow`), where 32 doubles the latency for ~15% more rate
    batch_size: int = Field(16, ge=1, le=10_000, description="events claimed per round")
    concurrency: int = Field(8, ge=1, le=256, description="contacts processed at once (PostgreSQL)")
    poll_interval: float = Field(0.05, gt=0, le=10, description="idle poll (a `notify()` wakes the worker sooner)")
    maintenance_interval: float = Field(
        0.5, gt=0, le=60, description="how often failed sends and stuck sessions are looked for"
    )
    max_event_attempts: int = Field(5, ge=1, le=100, description="an event failing this often becomes dead")
    # bounded work per contact (issue 16)
    expression_work: int = Field(
        MAX_WORK, ge=1_000, le=100_000_000,
        description="work units one template or expression may use (loop iterations, calls, items, characters)",
    )  # fmt: skip
    expression_timeout: float = Field(
        MAX_SECONDS, gt=0, le=10, description="seconds one template or expression may take"
    )
    event_expression_timeout: float = Field(
        TURN_SECONDS, gt=0, le=60, description="seconds all the templates and expressions of one event may take"
    )
    turn_share: int = Field(
        4, ge=1, le=10_000,
        description="a contact's turn in a round: every contact waiting gets this many of its events before any "
        "gets more, so one contact's backlog takes turns with the others' (alone, it gets a whole round)",
    )  # fmt: skip
    max_pending_per_contact: int = Field(
        100, ge=1, le=10_000,
        description="messages of one contact waiting at most; the newest beyond are set aside unprocessed "
        "(state dead, error 'over_backlog_cap')",
    )  # fmt: skip
    round_seconds: float = Field(
        0.25, gt=0, le=60,
        description="a round takes no further event after this long (SQLite: the write lock is held meanwhile)",
    )  # fmt: skip

    @property
    def expression_limits(self) -> ExpressionLimits:
        return ExpressionLimits(self.expression_work, self.expression_timeout, self.event_expression_timeout)

    @field_validator("commands")
    @classmethod
    def _fold_words(cls, value: dict[str, Command]) -> dict[str, Command]:
        return {word.strip().casefold(): command for word, command in value.items() if word.strip()}

    @field_validator("http_allow_hosts")
    @classmethod
    def _fold_hosts(cls, value: frozenset[str]) -> frozenset[str]:
        return frozenset(host.strip().lower().strip("[]") for host in value)

    def command_for(self, text: str | None) -> tuple[str, Command] | None:
        if not text:
            return None
        word = text.strip().casefold()
        command = self.commands.get(word)
        return (word, command) if command is not None else None
