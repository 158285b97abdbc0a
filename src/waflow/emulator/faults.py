"""Fault injection: what fraction of Graph calls fail, and how. Changeable while running."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator


class FaultSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    error_rates: dict[int, float] = Field(default_factory=dict)  # code → probability, e.g. {131000: 0.1}
    latency_ms: float = 0.0
    latency_jitter_ms: float = 0.0
    drop_rate: float = 0.0  # close the socket without an answer
    timeout_rate: float = 0.0  # hang for `hang_seconds` (longer than any sane client timeout)
    server_error_rate: float = 0.0  # a proxy-style 502 with a non-JSON body
    only_messages: bool = True  # faults apply to POST /messages only, not media/templates

    @field_validator("error_rates")
    @classmethod
    def _rates(cls, v: dict[int, float]) -> dict[int, float]:
        if any(not 0.0 <= p <= 1.0 for p in v.values()):
            raise ValueError("rates are probabilities between 0 and 1")
        return v

    def total(self) -> float:
        return sum(self.error_rates.values()) + self.drop_rate + self.timeout_rate + self.server_error_rate


@dataclass(frozen=True, slots=True)
class Decision:
    latency_s: float = 0.0
    action: str | None = None  # "error" | "drop" | "timeout" | "5xx"
    code: int = 0


class Faults:
    """Handle held by tests (`emu.faults.set(...)`) and the control plane alike."""

    def __init__(self, seed: int | None = None) -> None:
        self.settings = FaultSettings()
        self._rng = random.Random(seed)

    def set(self, **changes: Any) -> FaultSettings:
        """Merge changes into the current settings (`set(error_rates={131000: 0.1}, latency_ms=20)`)."""
        merged = self.settings.model_dump() | changes
        settings = FaultSettings.model_validate(merged)
        if settings.total() > 1.0:
            raise ValueError("fault rates add up to more than 1")
        self.settings = settings
        return settings

    def clear(self) -> None:
        self.settings = FaultSettings()

    def decide(self, is_messages: bool) -> Decision | None:
        s = self.settings
        if s.only_messages and not is_messages:
            return None
        latency = 0.0
        if s.latency_ms or s.latency_jitter_ms:
            latency = max(0.0, s.latency_ms + self._rng.uniform(-s.latency_jitter_ms, s.latency_jitter_ms)) / 1000
        if s.total() <= 0.0:
            return Decision(latency) if latency else None
        draw = self._rng.random()
        for code, p in s.error_rates.items():
            if draw < p:
                return Decision(latency, "error", code)
            draw -= p
        for action, p in (("drop", s.drop_rate), ("timeout", s.timeout_rate), ("5xx", s.server_error_rate)):
            if draw < p:
                return Decision(latency, action)
            draw -= p
        return Decision(latency) if latency else None
