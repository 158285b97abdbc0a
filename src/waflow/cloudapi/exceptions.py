"""Exceptions the Cloud API client raises, and the classification of Graph errors into them.

Three families, all under `CloudClientError`:

- `MessageValidationError`: the request breaks a platform limit; raised before any HTTP call.
- `CloudAPIError` and one subclass per `ErrorClass`: Graph answered with an error envelope.
  The request reached Meta and was refused, so the message was definitely NOT accepted.
- `NetworkError` / `SendTimeout`: no usable answer. `outcome_unknown` says whether Meta may
  have accepted the message anyway (the request left this process); the outbox must then
  reconcile from status webhooks (via `biz_opaque_callback_data`) instead of resending blindly.

Every exception carries `error_class`, `retry_after_s` and `scope` so that a sender can act on
any of them without a type switch. The classification comes from `errors.ERROR_TABLE` only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from waflow.cloudapi.errors import (
    PERMISSION_CODE,
    WHATSAPP_SCOPES,
    ErrorClass,
    RetryScope,
    TokenProblem,
    classify,
    missing_scope_text,
    spec_for,
    token_problem,
)


class CloudClientError(Exception):
    """Root of everything the Cloud API client raises."""

    error_class: ErrorClass = ErrorClass.PERMANENT
    retry_after_s: float | None = None
    scope: RetryScope = RetryScope.NUMBER
    # True when the request may have been accepted by Meta although no success answer arrived.
    outcome_unknown: bool = False

    @property
    def retryable(self) -> bool:
        return self.error_class is ErrorClass.RETRYABLE


class MessageValidationError(CloudClientError, ValueError):
    """A request breaks a documented platform limit; nothing was sent.

    `path` names the field in Cloud API wire terms (`interactive.action.buttons[1].reply.title`).
    """

    def __init__(self, path: str, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"{path}: {problem}" if path else problem)


# -- errors Graph reported ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """A Graph error (synchronous envelope or asynchronous `errors[]` item) plus what to do about it."""

    code: int | None
    message: str = ""
    title: str = ""
    details: str = ""
    subcode: int | None = None
    type: str = ""
    fbtrace_id: str | None = None
    user_title: str | None = None
    user_message: str | None = None
    is_transient: bool | None = None
    http_status: int | None = None
    error_class: ErrorClass = ErrorClass.PERMANENT
    retry_after_s: float | None = None
    scope: RetryScope = RetryScope.NUMBER
    max_attempts: int | None = None
    missing_scope: str | None = None  # code 10: the permission the call needed (named by Graph or by the call)

    @property
    def token_problem(self) -> TokenProblem | None:
        """Expired (190/463), invalid (190 otherwise), missing (104), missing scope (10), or None."""
        return token_problem(self.code, self.subcode)


class CloudAPIError(CloudClientError):
    """Graph answered with an error; the request was refused (the message was not accepted)."""

    def __init__(self, info: ErrorInfo) -> None:
        self.info = info
        self.error_class = info.error_class
        self.retry_after_s = info.retry_after_s
        self.scope = info.scope
        super().__init__(_describe(info))

    # Flat accessors: what callers reach for most.
    @property
    def code(self) -> int | None:
        return self.info.code

    @property
    def subcode(self) -> int | None:
        return self.info.subcode

    @property
    def title(self) -> str:
        return self.info.title

    @property
    def details(self) -> str:
        return self.info.details

    @property
    def fbtrace_id(self) -> str | None:
        return self.info.fbtrace_id

    @property
    def http_status(self) -> int | None:
        return self.info.http_status

    @property
    def max_attempts(self) -> int | None:
        return self.info.max_attempts

    @property
    def token_problem(self) -> TokenProblem | None:
        return self.info.token_problem


class RetryableError(CloudAPIError):
    """Transient (throughput, pair rate, 5xx, ...): back off `retry_after_s` and try again."""


class TokenError(CloudAPIError):
    """The access token is missing, expired or invalid, and a refresh did not help."""


class OutsideWindowError(CloudAPIError):
    """131047: the 24 h customer-service window is closed; only a template can reach the user."""


class InvalidRecipientError(CloudAPIError):
    """The recipient cannot receive this message (not on WhatsApp, not allowed, opted out, ...)."""


class TemplateError(CloudAPIError):
    """The template does not exist, is not approved, is paused, or got the wrong parameters."""


class PermanentError(CloudAPIError):
    """Fix the request or the account; retrying will not help."""


_CLASS_TO_EXC: dict[ErrorClass, type[CloudAPIError]] = {
    ErrorClass.RETRYABLE: RetryableError,
    ErrorClass.TOKEN: TokenError,
    ErrorClass.OUTSIDE_WINDOW: OutsideWindowError,
    ErrorClass.INVALID_RECIPIENT: InvalidRecipientError,
    ErrorClass.TEMPLATE: TemplateError,
    ErrorClass.PERMANENT: PermanentError,
}


class UnexpectedResponseError(PermanentError):
    """A 2xx answer whose body is not what the endpoint documents."""


# -- transport ---------------------------------------------------------------------------------


class NetworkError(CloudClientError):
    """No HTTP answer (connection refused/reset, protocol error).

    `outcome_unknown` is False only when the request certainly never reached the server
    (connection could not be established); otherwise Meta may have accepted the message.
    """

    error_class = ErrorClass.RETRYABLE
    retry_after_s = 1.0

    def __init__(self, message: str, *, outcome_unknown: bool) -> None:
        self.outcome_unknown = outcome_unknown
        super().__init__(message)


class SendTimeout(NetworkError):
    """The answer did not arrive in time after the request was (possibly) sent.

    An UNKNOWN outcome: the message may have been accepted and delivered. Do not resend blindly;
    reconcile through the status webhook carrying `biz_opaque_callback_data`.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message, outcome_unknown=True)


class ConnectTimeout(NetworkError):
    """No connection within the connect timeout: the request was never sent (outcome known)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, outcome_unknown=False)


# -- building errors ---------------------------------------------------------------------------


def _describe(info: ErrorInfo) -> str:
    parts = [f"({info.error_class.value})"]
    if info.code is not None:
        parts.append(f"code {info.code}")
    if info.subcode is not None:
        parts.append(f"subcode {info.subcode}")
    if info.http_status is not None:
        parts.append(f"HTTP {info.http_status}")
    head = " ".join(parts)
    text = info.message or info.title or "Graph API error"
    if info.details and info.details not in text:
        text = f"{text} — {info.details}"
    if info.fbtrace_id:
        text = f"{text} [fbtrace_id {info.fbtrace_id}]"
    return f"{head}: {text}"


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None


def _as_str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _opt_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def error_info(
    code: int | None,
    *,
    http_status: int | None = None,
    message: str = "",
    title: str = "",
    details: str = "",
    subcode: int | None = None,
    type: str = "",
    fbtrace_id: str | None = None,
    user_title: str | None = None,
    user_message: str | None = None,
    is_transient: bool | None = None,
    retry_after_header: float | None = None,
    needed_scope: str | None = None,
) -> ErrorInfo:
    """Classify an error from its code (and subcode: 190/463 is an expired token, 190 alone a wrong one) via
    the one table, falling back on the HTTP status. `needed_scope`: the permission the call needs, named in
    the error when Graph answers code 10 (permission denied) without naming one."""
    spec = spec_for(code, subcode) if code is not None else None
    if spec is not None:
        cls = spec.error_class
        retry_after = spec.retry_after_s
        scope = spec.scope
        max_attempts = spec.max_attempts
        title = title or spec.title
        if not details and cls is ErrorClass.TOKEN:
            details = spec.details  # "expired" or "wrong" says what to do: the row and the log show it
        details = details or ""
    else:
        cls = classify(code if code is not None else -1, http_status)
        # Graph's own hint for codes the table does not know.
        if is_transient and cls is ErrorClass.PERMANENT:
            cls = ErrorClass.RETRYABLE
        retry_after = 2.0 if cls is ErrorClass.RETRYABLE else None
        scope = RetryScope.NUMBER
        max_attempts = 3 if cls is ErrorClass.RETRYABLE else None
    if retry_after_header is not None and cls is ErrorClass.RETRYABLE:
        retry_after = max(retry_after or 0.0, retry_after_header)
    missing_scope = None
    if code == PERMISSION_CODE:
        named = [s for s in WHATSAPP_SCOPES if s in message or s in details]
        missing_scope = named[0] if named else needed_scope
        if missing_scope is not None and not details:
            details = missing_scope_text(missing_scope)
    return ErrorInfo(
        code=code,
        message=message,
        title=title,
        details=details,
        subcode=subcode,
        type=type,
        fbtrace_id=fbtrace_id,
        user_title=user_title,
        user_message=user_message,
        is_transient=is_transient,
        http_status=http_status,
        error_class=cls,
        retry_after_s=retry_after,
        scope=scope,
        max_attempts=max_attempts,
        missing_scope=missing_scope,
    )


def parse_error_envelope(
    body: Any, http_status: int | None, *, retry_after_header: float | None = None, needed_scope: str | None = None
) -> ErrorInfo:
    """Turn a Graph error body (`{"error": {...}}`, already decoded) into an `ErrorInfo`.

    A body that is not the envelope (a proxy's HTML 502, empty) is classified by HTTP status alone.
    """
    err = body.get("error") if isinstance(body, Mapping) else None
    if not isinstance(err, Mapping):
        text = f"HTTP {http_status} without a Graph error body" if http_status else "malformed error body"
        return error_info(None, http_status=http_status, message=text, retry_after_header=retry_after_header)
    data = err.get("error_data")
    details = _as_str(data.get("details")) if isinstance(data, Mapping) else _as_str(data)
    transient = err.get("is_transient")
    return error_info(
        _as_int(err.get("code")),
        http_status=http_status,
        message=_as_str(err.get("message")),
        title=_as_str(err.get("title")),
        details=details,
        subcode=_as_int(err.get("error_subcode")),
        type=_as_str(err.get("type")),
        fbtrace_id=_opt_str(err.get("fbtrace_id")),
        user_title=_opt_str(err.get("error_user_title")),
        user_message=_opt_str(err.get("error_user_msg")),
        is_transient=transient if isinstance(transient, bool) else None,
        retry_after_header=retry_after_header,
        needed_scope=needed_scope,
    )


def exception_for(info: ErrorInfo) -> CloudAPIError:
    """The exception subclass matching the error's class."""
    return _CLASS_TO_EXC[info.error_class](info)


def classify_async_error(item: Mapping[str, Any] | Any) -> ErrorInfo:
    """Classify an asynchronous error: a `statuses[].errors[]` (or `value.errors[]`) item.

    Accepts the wire dict (`{code, title, message, error_data{details}, href}`) or any object with
    `code`/`title`/`message`/`details` attributes (e.g. `waflow.canonical.ErrorDetail`).
    """
    if isinstance(item, Mapping):
        data = item.get("error_data")
        # newer payloads put the details under error_data, older ones at the error's top level
        nested = _as_str(data.get("details")) if isinstance(data, Mapping) else ""
        details = nested or _as_str(item.get("details"))
        code = _as_int(item.get("code"))
        title, message = _as_str(item.get("title")), _as_str(item.get("message"))
    else:
        code = _as_int(getattr(item, "code", None))
        title = _as_str(getattr(item, "title", ""))
        message = _as_str(getattr(item, "message", ""))
        details = _as_str(getattr(item, "details", ""))
    # Async errors carry no HTTP status; the table's entry stands in for it.
    spec = spec_for(code) if code is not None else None
    return error_info(
        code,
        http_status=spec.http_status if spec else None,
        message=message,
        title=title,
        details=details,
    )


def async_error_exception(item: Mapping[str, Any] | Any) -> CloudAPIError:
    """The exception a failed status webhook stands for (same classes as synchronous errors)."""
    return exception_for(classify_async_error(item))
