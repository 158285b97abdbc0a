"""Configuration of the webhook endpoint: which numbers it serves and with which app's secrets.

A deployment may serve several phone numbers of several Meta apps. Each number names the
app secret that signs its webhooks, the verify token of the GET handshake and, optionally, its
WhatsApp Business Account id (used to route fields that carry no phone number, such as
`message_template_status_update`). Secrets are `SecretStr`: they never show in a repr, a log
line or an error.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

DEFAULT_MAX_BODY_BYTES = 3 * 1024 * 1024  # Meta's documented payload ceiling
ENV_CONFIG = "WAFLOW_WEBHOOK_CONFIG"
# Events queued or committing (not yet durable) beyond which a POST is shed with 503 + Retry-After.
# `bench/webhooks_ingest.py` on a 2-core machine committed ~13k events/s closed loop (SQLite and PostgreSQL),
# so 10,000 uncommitted events is under a second of commit work: a POST let in is still answered within about
# a second, well inside the few seconds after which Meta counts a slow answer as failed and redelivers. Normal
# load stays far below it: 8,000 events/s offered (twice a 1,000 msg/s number's statuses and messages) were
# answered at p99 14 ms, i.e. ~8,000/s × 0.014 s ≈ 100 events uncommitted; Meta batches at most 1,000 updates
# per POST, so it takes ten full POSTs waiting behind a stalled database to shed.
DEFAULT_MAX_UNCOMMITTED_EVENTS = 10_000
# Seconds a POST may be predicted to wait for its inbox commit before it is shed with 503 + Retry-After (the
# writer's `predicted_wait_s`: events ahead / recent commit throughput, or the oldest waiting request's age). The
# count bound above never fires when the senders' connections bound the requests in flight (Meta's, or the
# storm bench's 64) while each commit is slow on a busy machine: then every answer waits behind a few thousand
# events committed at a few hundred per second. 1 s rather than more: under sustained overload the admitted POSTs
# wait about the budget, and answers must stay well inside the few seconds after which Meta redelivers (the
# reliability storm holds them to p99 ≤ 1.5 s with the HTTP and parsing on top); it is ~70× the normal-load wait
# (p99 14 ms at 8,000 events/s) and matches `Retry-After: 1`.
DEFAULT_MAX_COMMIT_WAIT_S = 1.0


class NumberConfig(BaseModel):
    """One business phone number: the app secret that signs its webhooks and its verify token."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    app_secret: SecretStr
    verify_token: SecretStr
    waba_id: str | None = None

    @field_validator("app_secret", "verify_token")
    @classmethod
    def _not_empty(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value():
            raise ValueError("must not be empty")
        return value


class WebhookConfig(BaseModel):
    """The endpoint's settings; `numbers` maps phone_number_id → `NumberConfig`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    numbers: dict[str, NumberConfig] = Field(min_length=1)
    max_body_bytes: int = Field(default=DEFAULT_MAX_BODY_BYTES, gt=0)
    # group commit: one transaction takes what arrived while the previous one committed,
    # lingering up to `batch_linger_s` for more while it holds fewer than `batch_max_events`
    batch_max_events: int = Field(default=5000, gt=0)
    batch_linger_s: float = Field(default=0.0, ge=0, le=1)
    # Overload: a POST that would take the events waiting for their commit past this bound is answered
    # 503 + Retry-After (nothing stored; Meta retries) instead of queueing behind them. See
    # DEFAULT_MAX_UNCOMMITTED_EVENTS for the default; None: unbounded.
    max_uncommitted_events: int | None = Field(default=DEFAULT_MAX_UNCOMMITTED_EVENTS, gt=0)
    # ... and so is a POST the writer predicts would wait longer than this for its commit (never while nothing
    # waits). See DEFAULT_MAX_COMMIT_WAIT_S; None: no time bound.
    max_commit_wait_s: float | None = Field(default=DEFAULT_MAX_COMMIT_WAIT_S, gt=0)
    # Delivery statuses: applied in the inbox transaction (inline, before the 200) or left pending
    # for the `StatusProcessor`. None (the default) picks by database, from
    # `bench/webhooks_ingest.py`: on SQLite inline (one writer: a second transaction per batch
    # only adds an fsync and a wait for the write lock; under saturation inline kept every
    # status applied while the processor fell behind), on PostgreSQL the processor (the inline
    # statements' round trips halved ingest there). Either way the processor runs (unless
    # `status_processor` is False, e.g. when `waflow worker` processes run it) for what the
    # endpoint left pending: statuses whose inline application failed, a backlog at start.
    apply_statuses_inline: bool | None = None
    status_processor: bool = True

    @classmethod
    def single(cls, phone_number_id: str, app_secret: str, verify_token: str, **kw: Any) -> WebhookConfig:
        """A one-number configuration."""
        number = NumberConfig(
            app_secret=SecretStr(app_secret), verify_token=SecretStr(verify_token), waba_id=kw.pop("waba_id", None)
        )
        return cls(numbers={phone_number_id: number}, **kw)

    @classmethod
    def from_json(cls, text: str | bytes) -> WebhookConfig:
        return cls.model_validate_json(text)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> WebhookConfig:
        """From `WAFLOW_WEBHOOK_CONFIG`: inline JSON, or `@/path/to/file.json`."""
        env = os.environ if environ is None else environ
        text = env.get(ENV_CONFIG)
        if not text:
            raise ValueError(f"{ENV_CONFIG} is not set")
        if text.startswith("@"):
            with open(text[1:], "rb") as fh:
                return cls.from_json(fh.read())
        return cls.from_json(text)
