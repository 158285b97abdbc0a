"""Everything that shapes one emulator run: identities, secrets, limits, timings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class StatusDelays(BaseModel):
    """Seconds (real time) after acceptance at which each status webhook is emitted."""

    model_config = ConfigDict(extra="forbid")

    sent: float = 0.0
    delivered: float = 0.02
    read: float | None = 0.05  # None: users never read unless told to


class TemplateSeed(BaseModel):
    """A template present when the emulator starts (same fields as a creation request)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    language: str = "en_US"
    category: str = "UTILITY"
    status: str = "APPROVED"
    parameter_format: str = "positional"
    components: list[dict[str, Any]] = Field(default_factory=list)
    waba_id: str | None = None  # default: the configured WABA


class TokenSeed(BaseModel):
    """A token known when the emulator starts, of a kind and lifetime (`issued_tokens`)."""

    model_config = ConfigDict(extra="forbid")

    token: str = Field(repr=False)
    type: Literal["SYSTEM_USER", "USER"] = "SYSTEM_USER"
    expires_in_s: float | None = Field(None, gt=0, description="None: never (system user) / 24 h (user)")
    scopes: list[str] | None = None  # None: business_management and both WhatsApp scopes
    targets: list[str] | None = None  # WABA ids the WhatsApp scopes reach; None: the configured WABA


class EmulatorConfig(BaseModel):
    """One emulator run. Secrets are excluded from repr so they never reach logs."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    phone_number_id: str = "106540352242922"
    display_phone_number: str = "15550783881"
    verified_name: str = "Waflow Test"
    waba_id: str = "102290129340398"
    app_id: str = "1234567890123456"
    app_name: str = "Waflow Emulator App"

    # never-expiring system-user tokens with every scope; `issued_tokens` for other kinds and lifetimes
    access_tokens: list[str] = Field(default_factory=lambda: ["EAAtest-waflow-emulator-token"], repr=False)
    issued_tokens: list[TokenSeed] = Field(default_factory=list, repr=False)
    app_secret: str = Field(default="emulator-app-secret", repr=False)
    verify_token: str = Field(default="emulator-verify-token", repr=False)
    callback_url: str | None = None

    throughput_mps: float = 80.0
    pair_rate_per_s: float = 1 / 6
    pair_burst: int = 45
    window_hours: float = 24.0
    enforce_window: bool = True

    status_delays: StatusDelays = Field(default_factory=StatusDelays)
    media_url_ttl_minutes: float = 5.0
    max_body_bytes: int = 3 * 1024 * 1024
    max_upload_bytes: int = 100 * 1024 * 1024

    # Webhook delivery: seconds between attempts after a failure; Meta's days of backoff compressed.
    webhook_retry_schedule: list[float] = Field(default_factory=lambda: [0.05, 0.1, 0.2, 0.4, 0.8])
    webhook_timeout_s: float = 10.0
    webhook_concurrency: int = 8
    status_contacts: bool = True  # 2026 BSUID payloads carry contacts on statuses too (pywa 4.x needs them)

    hang_seconds: float = 30.0  # how long an injected timeout fault holds a request
    templates: list[TemplateSeed] = Field(default_factory=list)
    seed: int | None = None  # randomness of fault injection; None = unseeded

    @property
    def access_token(self) -> str:
        """The first (primary) valid token."""
        return self.access_tokens[0]

    @classmethod
    def from_file(cls, path: str | Path, **overrides: Any) -> EmulatorConfig:
        """Load JSON or YAML; keyword overrides win over the file."""
        p = Path(path)
        text = p.read_text(encoding="utf-8")
        data: dict[str, Any]
        if p.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text) or {}
        else:
            data = json.loads(text)
        data.update({k: v for k, v in overrides.items() if v is not None})
        return cls.model_validate(data)
