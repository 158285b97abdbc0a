"""What to do after a send try failed: the retry policy by error class (one table: `cloudapi.errors`).

- THROTTLE — codes 4, 80007, 130429, 131048, 131056, 133016 (`THROTTLING_CODES`). Budget `max_throttles`.
  Delay: 131056 → the pair limiter's `penalize` (≥ 6 s, then 4^k s; only that recipient waits);
  others → the code's hint × 2^(k-1), jittered +0..25 %.
- RETRY — retryable class: 1, 2, 131000, 131016, 131057, 133004, 2494100, 5xx/429 without a code,
  connection refused. Budget `max_attempts` (or the code's own tighter bound, e.g. 131000: 3).
  Delay: equal jitter around base × 2^(n-1), at least the code's hint, at most `max_delay_s`.
- UNKNOWN — no answer: read timeout, dropped connection, 502/504 without a Graph body, 200 without an
  id. Budget `max_attempts`. The row gets `outcome_unknown_since` and is due again after
  `unknown_grace_s`; a status webhook carrying `wf:<id>` settles it as accepted before that.
- FAIL at once — token (0, 104, 190, 401: the client already refreshed once and replayed), outside_window
  (131047), invalid_recipient (131026, 131030, ...), template (132xxx), permanent (100, 131009, ...),
  and messages that break a platform limit (validated before any HTTP call).

Throttling answers say "not now", not "this message is broken", so they do not use up the attempt
budget of the message; they have their own, larger one (`max_throttles`), counted in the row's
`throttles` column. Every other failed or unanswered try counts against `max_attempts`.
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass, field

from waflow.canonical import ErrorDetail
from waflow.cloudapi.errors import THROTTLING_CODES, ErrorClass, spec_for
from waflow.cloudapi.exceptions import (
    CloudAPIError,
    CloudClientError,
    MessageValidationError,
    NetworkError,
)
from waflow.store.statuses import error_text

PAIR_RATE_CODE = 131056


class Verdict(enum.StrEnum):
    FAIL = "fail"  # failed for good, with the reason on the row
    RETRY = "retry"  # try again after `delay_s` (counts against max_attempts)
    THROTTLE = "throttle"  # try again after `delay_s` (counts against max_throttles)
    UNKNOWN = "unknown"  # maybe accepted: wait `delay_s` for a status webhook, then resend


@dataclass(frozen=True, slots=True)
class Decision:
    verdict: Verdict
    delay_s: float
    code: int | None
    error_class: str
    text: str
    http_status: int | None = None


def describe(code: int | None, title: str = "", details: str = "", fallback: str = "") -> str:
    """The error text a row shows; the same function the status webhooks use, so a synchronous failure
    and an asynchronous one with the same code read the same."""
    if code is not None and not title:
        spec = spec_for(code)
        if spec is not None:
            title, details = spec.title, details or spec.details
    if not title and not details:
        return fallback or (f"error {code}" if code is not None else "error")
    return error_text(ErrorDetail(code=code if code is not None else 0, title=title, details=details))


def classify_code(code: int) -> str | None:
    """Error class of a provider error code (a `StatusRepository` classifier for failed webhooks)."""
    spec = spec_for(code)
    return spec.error_class.value if spec is not None else None


@dataclass
class RetryPolicy:
    max_attempts: int = 8
    max_throttles: int = 30
    base_delay_s: float = 0.5
    max_delay_s: float = 300.0
    unknown_grace_s: float = 60.0
    rng: random.Random = field(default_factory=random.Random)

    def backoff(self, n: int, hint_s: float | None = None) -> float:
        """Delay before try n+1 after n counted failures: equal jitter around base × 2^(n-1), never below the
        provider's hint (itself jittered up to +25 % so that many throttled rows do not come back at once)."""
        ceiling = min(self.max_delay_s, self.base_delay_s * 2.0 ** max(0, n - 1))
        delay = ceiling / 2 + self.rng.uniform(0, ceiling / 2)
        if hint_s:
            delay = max(delay, min(self.max_delay_s, hint_s * 2.0 ** max(0, n - 1)) * self.rng.uniform(1.0, 1.25))
        return delay

    def decide(
        self, exc: CloudClientError, *, failures: int, throttles: int, same_code: int | None = None
    ) -> Decision:
        """`failures` / `throttles`: counted tries so far, this one included. `same_code`: how many of the
        failures had this error's code (this one included); a code's own tighter bound (131000: 3) counts
        those, so earlier failures of another kind (a dropped connection) do not use it up."""
        if isinstance(exc, MessageValidationError):
            return Decision(Verdict.FAIL, 0.0, None, ErrorClass.PERMANENT.value, f"invalid message: {exc}")
        code = getattr(exc, "code", None) if isinstance(exc, CloudAPIError) else None
        http = exc.http_status if isinstance(exc, CloudAPIError) else None
        text = _text(exc)
        cls = exc.error_class.value
        if exc.outcome_unknown:
            if failures >= self.max_attempts:
                return Decision(Verdict.FAIL, 0.0, code, cls, f"no answer after {failures} tries: {text}", http)
            return Decision(Verdict.UNKNOWN, self.unknown_grace_s, code, cls, text, http)
        if code is not None and code in THROTTLING_CODES:
            if throttles > self.max_throttles:
                return Decision(Verdict.FAIL, 0.0, code, cls, f"still throttled after {throttles} tries: {text}", http)
            return Decision(Verdict.THROTTLE, self.backoff(throttles, exc.retry_after_s or 1.0), code, cls, text, http)
        if exc.error_class is ErrorClass.RETRYABLE:
            exhausted = failures >= self.max_attempts
            if isinstance(exc, CloudAPIError) and exc.max_attempts is not None:
                exhausted = exhausted or (failures if same_code is None else same_code) >= exc.max_attempts
            if exhausted:
                return Decision(Verdict.FAIL, 0.0, code, cls, f"gave up after {failures} tries: {text}", http)
            return Decision(Verdict.RETRY, self.backoff(failures, exc.retry_after_s), code, cls, text, http)
        return Decision(Verdict.FAIL, 0.0, code, cls, text, http)


def _text(exc: CloudClientError) -> str:
    if isinstance(exc, CloudAPIError):
        return describe(exc.code, exc.title, exc.details, fallback=str(exc))
    if isinstance(exc, NetworkError):
        return str(exc)
    return str(exc) or type(exc).__name__
