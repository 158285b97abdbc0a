"""`waflow serve` keeps an eye on each number's access token: at start, then daily.

Each round reads the number's token again from its reference (a rotated file or variable is seen) and asks
Graph's `debug_token` about it, as the app (`numbers[].app_id` + `app_secret`). What it finds:

- a warning in the log 7 days and again 24 hours before the token expires (the rounds are timed to those
  moments, not only daily), an error once it has expired or is wrong, or lacks a permission;
- `waflow_access_token_expires_at_seconds{phone_number_id}` (Unix seconds, 0 = never) and
  `waflow_access_token_valid{phone_number_id}` (1 / 0) for Prometheus;
- `readiness()`: a sentence naming the number and the reason once a token has expired (by the last answer or
  by the clock, between rounds) or is not valid, which `/readyz` answers 503 with.

A number without `app_id` is not checked (logged once at start, naming the field). A round that cannot reach
Graph (network, 5xx) is logged and tried again `retry_s` later; it never stops `waflow serve`. An unusable
token is looked at again every `retry_s` too, so a replaced token clears `/readyz` soon.

Time comes from a `Clock` (`SystemClock` in production; tests pass `waflow.server.testing.ManualClock` and
skip days without sleeping).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Protocol

from prometheus_client import Gauge

from waflow.cloudapi import CloudClientError, Timeouts, TokenProvider, TokenUnavailableError
from waflow.cloudapi.errors import TokenProblem
from waflow.cloudapi.token_info import (
    AppCredentialsError,
    Finding,
    TokenAdmin,
    TokenInfo,
    assess,
    describe_expiry,
    format_remaining,
    format_time,
)
from waflow.config import NumberSettings, Settings

log = logging.getLogger("waflow.server.token")

DAY = 86400.0
WARN_BEFORE_S: tuple[tuple[str, float], ...] = (("7 days", 7 * DAY), ("24 h", DAY))  # widest first
RETRY_S = 600.0

EXPIRES_AT = Gauge(
    "waflow_access_token_expires_at_seconds",
    "When each number's access token expires (Unix seconds, from debug_token); 0 = never.",
    ["phone_number_id"],
)
VALID = Gauge(
    "waflow_access_token_valid",
    "Whether each number's access token was valid at its last check (1) or expired / wrong (0).",
    ["phone_number_id"],
)


class Clock(Protocol):
    def now(self) -> float:
        """Unix seconds."""
        ...

    async def sleep(self, seconds: float, wake: asyncio.Event) -> None:
        """Return after `seconds`, or earlier once `wake` is set."""
        ...


class SystemClock:
    def now(self) -> float:
        return time.time()

    async def sleep(self, seconds: float, wake: asyncio.Event) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), max(0.0, seconds))


def unchecked_reason(index: int, number: NumberSettings) -> str | None:
    """Why this number's token cannot be asked about (the missing setting), or None. (`app_secret` is
    required by the settings already: it signs the webhooks.)"""
    if number.app_id is None:
        return (f"numbers[{index}].app_id is not set (the Meta app's id: App Dashboard > App settings > Basic; "
                f"numbers[{index}].app_secret is its secret)")
    return None


@dataclass
class TokenState:
    """What the last rounds found about one number's token."""

    label: str  # "numbers[0] (106540352242922)"
    phone_number_id: str
    checked_at: float | None = None
    info: TokenInfo | None = None
    findings: list[Finding] = field(default_factory=list)
    unreadable: str | None = None  # the token reference points at nothing usable
    last_failure: str | None = None  # why the last round could not ask Graph
    warned: set[str] = field(default_factory=set)  # expiry warnings given for `warned_for`
    warned_for: int | None = None

    @property
    def expires_at(self) -> int | None:
        """Last known expiry (0 = never), None before a good answer (or for a wrong token)."""
        if self.info is None or self.info.problem is TokenProblem.INVALID:
            return None
        return self.info.expires_at

    def problem(self, now: float) -> str | None:
        """Why this number cannot send with its token (expired, wrong, unreadable), or None."""
        if self.unreadable:
            return f"{self.label}: the access token cannot be read: {self.unreadable}"
        info = self.info
        if info is None:
            return None
        if info.problem is not None:
            expired_at = format_time(info.expires_at) if info.expires_at else None
            return f"{self.label}: {info.problem_text(expired_at)}"
        if info.expires_at and now >= info.expires_at:
            return f"{self.label}: the access token has expired on {format_time(info.expires_at)}"
        return None


class TokenWatch:
    """The background loop of `waflow serve` that checks every number's token (see the module doc)."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock | None = None,
        interval_s: float = DAY,
        retry_s: float = RETRY_S,
        providers: dict[str, TokenProvider] | None = None,
    ) -> None:
        self.clock: Clock = clock or SystemClock()
        self.interval_s = interval_s
        self.retry_s = retry_s
        self.states: dict[str, TokenState] = {}
        self.unchecked: dict[str, str] = {}  # phone_number_id → the missing settings
        self._admins: dict[str, TokenAdmin] = {}
        self._providers: dict[str, TokenProvider] = {}
        self._numbers: dict[str, NumberSettings] = {}
        timeouts = Timeouts(read=settings.graph.timeout_s, total=settings.graph.timeout_s + 5)
        for i, number in enumerate(settings.numbers):
            pnid = number.phone_number_id
            reason = unchecked_reason(i, number)
            if reason is not None:
                self.unchecked[pnid] = reason
                continue
            assert number.app_id is not None
            self._numbers[pnid] = number
            self.states[pnid] = TokenState(f"numbers[{i}] ({pnid})", pnid)
            self._providers[pnid] = (providers or {}).get(pnid) or number.token_provider()
            self._admins[pnid] = TokenAdmin(
                app_id=number.app_id, app_secret=number.app_secret, base_url=settings.graph.base_url,
                api_version=settings.graph.api_version, timeouts=timeouts,
            )
        self.rounds = 0
        self._round_done = asyncio.Condition()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._labels = {n.phone_number_id: f"numbers[{i}] ({n.phone_number_id})"
                        for i, n in enumerate(settings.numbers)}

    def __repr__(self) -> str:
        return f"TokenWatch(numbers={list(self.states)}, unchecked={list(self.unchecked)})"

    # -- running ---------------------------------------------------------------------------
    def start(self) -> None:
        for pnid, reason in self.unchecked.items():
            log.warning("%s: the access token cannot be checked (expiry, scopes): %s", self._labels[pnid], reason)
        if not self.states:
            return
        self._stop.clear()
        self._task = asyncio.create_task(self._run(), name="token-watch")

    async def stop(self) -> None:
        """Stop at once: a round holds nothing but Graph calls, so one in flight is cancelled rather than waited
        for (it must not eat the shutdown budget of the parts that hold rows)."""
        self._stop.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for admin in self._admins.values():
            await admin.aclose()

    async def _run(self) -> None:
        while not self._stop.is_set():
            delay = await self.check_once()
            if self._stop.is_set():
                return
            await self.clock.sleep(delay, self._stop)

    async def wait_rounds(self, count: int) -> None:
        """Until `count` rounds have finished since the start (tests)."""
        async with self._round_done:
            await self._round_done.wait_for(lambda: self.rounds >= count)

    # -- one round -------------------------------------------------------------------------
    async def check_once(self) -> float:
        """Check every checkable number's token; the seconds until the next round is due."""
        now = self.clock.now()
        delay = self.interval_s
        for pnid, state in self.states.items():
            ok = await self._check(pnid, state)
            now = self.clock.now()
            if not ok or state.problem(now) is not None:
                delay = min(delay, self.retry_s)
            expires = state.expires_at
            if expires:
                for _, before in WARN_BEFORE_S:
                    if expires - before > now:
                        delay = min(delay, expires - before - now)
                if expires > now:
                    delay = min(delay, expires - now)
        async with self._round_done:
            self.rounds += 1
            self._round_done.notify_all()
        return max(delay, 0.0)

    async def _check(self, pnid: str, state: TokenState) -> bool:
        """One number; False when Graph could not be asked (tried again `retry_s` later)."""
        label = state.label
        try:
            token = await self._providers[pnid].get_token(refresh=True)
        except TokenUnavailableError as exc:
            if state.unreadable != str(exc):
                log.error("%s: the access token cannot be read: %s", label, exc)
            state.unreadable = str(exc)
            VALID.labels(pnid).set(0)
            return True
        state.unreadable = None
        try:
            info = await self._admins[pnid].debug(token)
        except AppCredentialsError as exc:
            where = label.split(" ")[0]
            text = f"{exc}: check {where}.app_id and {where}.app_secret"
            if state.last_failure != text:
                log.error("%s: cannot check the access token: %s", label, text)
            state.last_failure = text
            return True
        except CloudClientError as exc:
            state.last_failure = str(exc)
            log.warning("%s: could not check the access token (%s); trying again in %s", label, exc,
                        format_remaining(self.retry_s))
            return False
        state.last_failure = None
        self._record(pnid, state, info)
        return True

    def _record(self, pnid: str, state: TokenState, info: TokenInfo) -> None:
        number = self._numbers[pnid]
        now = self.clock.now()
        first = state.checked_at is None
        previous = {f.text for f in state.findings}
        state.info, state.checked_at = info, now
        state.findings = assess(info, waba_id=number.waba_id, app_id=number.app_id)
        if info.problem is TokenProblem.INVALID:
            with contextlib.suppress(KeyError):
                EXPIRES_AT.remove(pnid)
        else:
            EXPIRES_AT.labels(pnid).set(info.expires_at)
        VALID.labels(pnid).set(1 if info.problem is None and not (info.expires_at and now >= info.expires_at) else 0)
        for finding in state.findings:
            if finding.text not in previous:  # logged when it appears, not every round
                (log.error if finding.level == "error" else log.warning)("%s: %s", state.label, finding.text)
        if first and info.problem is None:
            log.info("%s: access token of a %s (app %s), expires %s", state.label, info.kind,
                     info.application or info.app_id or "?", describe_expiry(info.expires_at, now))
        self._warn_expiry(state, info, now)

    def _warn_expiry(self, state: TokenState, info: TokenInfo, now: float) -> None:
        if info.problem is not None or not info.expires_at:
            return
        if state.warned_for != info.expires_at:  # a new token (or a new expiry): warn afresh
            state.warned_for, state.warned = info.expires_at, set()
        left = info.expires_at - now
        if left <= 0:
            if "expired" not in state.warned:
                state.warned.add("expired")
                log.error("%s: the access token has expired on %s", state.label, format_time(info.expires_at))
            return
        due = [name for name, before in WARN_BEFORE_S if left <= before]
        if not due or due[-1] in state.warned:
            return
        state.warned.update(due)
        log.warning(
            "%s: the access token expires in %s (%s): put a new one where numbers[].token points%s",
            state.label, format_remaining(left), format_time(info.expires_at),
            " or run `waflow token exchange`" if info.type == "USER" else "",
        )

    # -- readiness -------------------------------------------------------------------------
    def readiness(self) -> str | None:
        """Why `/readyz` must fail (a number's token expired, wrong or unreadable), or None."""
        now = self.clock.now()
        problems = [p for p in (s.problem(now) for s in self.states.values()) if p]
        return "; ".join(problems) or None
