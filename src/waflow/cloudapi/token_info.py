"""What an access token is and how long it lives: Graph's `debug_token`, and the token exchange.

    async with TokenAdmin(app_id="1234", app_secret=secret, base_url=settings.graph.base_url) as admin:
        info = await admin.debug(token)          # TokenInfo: type, app, expires_at (0 = never), scopes, WABAs
        info.problem                             # None, TokenProblem.EXPIRED / INVALID
        info.missing_scopes(WHATSAPP_SCOPES)     # ("whatsapp_business_management",) ...
        new = await admin.exchange(user_token)   # a long-lived user token (`fb_exchange_token`)

Both calls authenticate as the app: `debug_token` with the app access token `<app_id>|<app_secret>`, the
exchange with `client_id` / `client_secret`. A refusal of those is an `AppCredentialsError` (the app id or
secret is wrong), never confused with a problem of the token being looked at, which `debug_token` answers
inside its `data` (`TokenInfo.problem`) and the exchange as a `TokenError` (190, 190/463).

Secrets (the app secret, the tokens) travel only in the query string of these two calls; they are never put
in a repr, a log line or an exception text (Graph's messages are redacted).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
from pydantic import SecretStr

from waflow.cloudapi.errors import (
    SCOPE_MANAGEMENT,
    SCOPE_MESSAGING,
    WHATSAPP_SCOPES,
    ErrorClass,
    TokenProblem,
    missing_scope_text,
    token_problem,
    token_problem_text,
)
from waflow.cloudapi.exceptions import (
    CloudClientError,
    ErrorInfo,
    UnexpectedResponseError,
    error_info,
    exception_for,
    parse_error_envelope,
)
from waflow.cloudapi.transport import DEFAULT_API_VERSION, DEFAULT_BASE_URL, Timeouts, transport_error

logger = logging.getLogger("waflow.cloudapi")

_REDACTED = "***"
# Codes with which Graph refuses the app's own credentials (the app token, client_id / client_secret).
_APP_CREDENTIAL_CODES = frozenset({0, 1, 101, 104, 190})

KIND_LABELS = {
    "SYSTEM_USER": "system user",
    "USER": "user",
    "APP": "app",
    "PAGE": "page",
}

__all__ = [
    "SCOPE_MANAGEMENT",
    "SCOPE_MESSAGING",
    "WHATSAPP_SCOPES",
    "AppCredentialsError",
    "ExchangedToken",
    "Finding",
    "GranularScope",
    "TokenAdmin",
    "TokenInfo",
    "assess",
    "describe_expiry",
    "format_remaining",
    "format_time",
]


@dataclass(frozen=True, slots=True)
class GranularScope:
    """A permission limited to some objects: for the WhatsApp scopes, the WABA ids the token may use."""

    scope: str
    target_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """What `debug_token` says about a token (never the token itself).

    `type`: `SYSTEM_USER`, `USER`, `APP`, `PAGE` (or "" when Graph did not say). `expires_at`: Unix seconds,
    0 = never. `error_*`: why it is not valid (190/463: expired; 190 otherwise: a wrong token)."""

    is_valid: bool
    type: str = ""
    app_id: str | None = None
    application: str | None = None
    expires_at: int = 0
    data_access_expires_at: int | None = None
    issued_at: int | None = None
    scopes: tuple[str, ...] = ()
    granular_scopes: tuple[GranularScope, ...] = ()
    user_id: str | None = None
    error_code: int | None = None
    error_subcode: int | None = None
    error_message: str = ""

    @property
    def never_expires(self) -> bool:
        return self.expires_at == 0

    @property
    def kind(self) -> str:
        """`system user`, `user`, `app`, ... for people."""
        return KIND_LABELS.get(self.type, self.type.lower().replace("_", " ") or "unknown")

    @property
    def problem(self) -> TokenProblem | None:
        """None for a valid token; EXPIRED (190/463) or INVALID (any other reason) otherwise."""
        if self.is_valid:
            return None
        found = token_problem(self.error_code if self.error_code is not None else 190, self.error_subcode)
        return found if found in (TokenProblem.EXPIRED, TokenProblem.INVALID) else TokenProblem.INVALID

    def problem_text(self, expired_at: str | None = None) -> str | None:
        problem = self.problem
        if problem is None:
            return None
        return token_problem_text(problem, subcode=self.error_subcode, expired_at=expired_at)

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes

    def missing_scopes(self, required: Iterable[str] = WHATSAPP_SCOPES) -> tuple[str, ...]:
        return tuple(s for s in required if s not in self.scopes)

    def targets(self, scope: str) -> tuple[str, ...] | None:
        """The object ids `scope` is limited to; None when Graph lists no granular scope for it."""
        for granular in self.granular_scopes:
            if granular.scope == scope:
                return granular.target_ids
        return None

    def whatsapp_targets(self) -> tuple[str, ...]:
        """Every WABA id the token's WhatsApp scopes name, in order, once each."""
        seen: dict[str, None] = {}
        for scope in WHATSAPP_SCOPES:
            for target in self.targets(scope) or ():
                seen.setdefault(target, None)
        return tuple(seen)

    def serves(self, waba_id: str, scope: str = SCOPE_MESSAGING) -> bool | None:
        """Whether the token's `scope` reaches this WABA: None when Graph says nothing of its targets (then
        the scope is not limited to some WABAs, or Graph did not tell)."""
        if not self.has_scope(scope):
            return False
        targets = self.targets(scope)
        if not targets:
            return None
        return waba_id in targets

    @classmethod
    def from_graph(cls, data: Mapping[str, Any]) -> TokenInfo:
        """From the `data` object of a `debug_token` answer."""
        error = data.get("error")
        error = error if isinstance(error, Mapping) else {}
        granular = []
        for item in data.get("granular_scopes") or ():
            if isinstance(item, Mapping) and isinstance(item.get("scope"), str):
                targets = tuple(str(t) for t in item.get("target_ids") or () if isinstance(t, str | int))
                granular.append(GranularScope(item["scope"], targets))
        return cls(
            is_valid=data.get("is_valid") is True,
            type=_str(data.get("type")) or "",
            app_id=_str(data.get("app_id")),
            application=_str(data.get("application")),
            expires_at=_int(data.get("expires_at")) or 0,
            data_access_expires_at=_int(data.get("data_access_expires_at")),
            issued_at=_int(data.get("issued_at")),
            scopes=tuple(s for s in data.get("scopes") or () if isinstance(s, str)),
            granular_scopes=tuple(granular),
            user_id=_str(data.get("user_id")),
            error_code=_int(error.get("code")),
            error_subcode=_int(error.get("subcode", error.get("error_subcode"))),
            error_message=_str(error.get("message")) or "",
        )


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing wrong with a token for a number: `error` (sends or templates will fail) or `warning`."""

    level: str  # "error" | "warning"
    text: str
    problem: TokenProblem | None = None


def assess(info: TokenInfo, *, waba_id: str | None = None, app_id: str | None = None) -> list[Finding]:
    """What stands between this token and a number that sends (and, with a WABA, manages templates)."""
    problem = info.problem
    if problem is not None:
        expired_at = format_time(info.expires_at) if info.expires_at else None
        return [Finding("error", info.problem_text(expired_at) or "", problem)]
    out: list[Finding] = []
    if app_id and info.app_id and info.app_id != app_id:
        out.append(Finding("error", f"the access token belongs to app {info.app_id}, not to the configured "
                                    f"app_id {app_id}", TokenProblem.INVALID))
    if not info.has_scope(SCOPE_MESSAGING):
        out.append(Finding("error", missing_scope_text(SCOPE_MESSAGING), TokenProblem.MISSING_SCOPE))
    if not info.has_scope(SCOPE_MANAGEMENT):
        if waba_id:
            out.append(Finding("error", missing_scope_text(SCOPE_MANAGEMENT), TokenProblem.MISSING_SCOPE))
        else:
            out.append(Finding("warning", missing_scope_text(SCOPE_MANAGEMENT) + " (this number names no "
                                          "waba_id, so waflow manages no templates for it)",
                               TokenProblem.MISSING_SCOPE))
    if waba_id:
        for scope in WHATSAPP_SCOPES:
            targets = info.targets(scope)
            if info.has_scope(scope) and targets and waba_id not in targets:
                out.append(Finding("error", f"the access token's {scope} permission does not reach WABA {waba_id} "
                                            f"(only {', '.join(targets)}): give the token's user access to it"))
    return out


@dataclass(frozen=True, slots=True)
class ExchangedToken:
    """The answer of the token exchange: a long-lived user token (a secret: repr shows no value)."""

    access_token: SecretStr = field(repr=False)
    token_type: str = "bearer"
    expires_in: int | None = None  # seconds from now; None: Graph did not say


class AppCredentialsError(CloudClientError):
    """Graph refused the app's own credentials (the app id or the app secret), not the token looked at."""

    error_class = ErrorClass.PERMANENT

    def __init__(self, info: ErrorInfo) -> None:
        self.info = info
        code = f"Graph error {info.code}" if info.code is not None else f"HTTP {info.http_status}"
        text = info.message or info.title or "refused"
        super().__init__(f"the app id or app secret is wrong ({code}: {text})")


class TokenAdmin:
    """The app-level Graph calls about tokens, with the app's id and secret."""

    def __init__(
        self,
        *,
        app_id: str,
        app_secret: str | SecretStr,
        base_url: str = DEFAULT_BASE_URL,
        api_version: str = DEFAULT_API_VERSION,
        timeouts: Timeouts | None = None,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        self.app_id = app_id
        self._secret = app_secret if isinstance(app_secret, SecretStr) else SecretStr(app_secret)
        base = base_url.rstrip("/")
        version = api_version.strip("/")
        self.root = f"{base}/{version}" if version else base
        self.timeouts = timeouts or Timeouts()
        self._owns_http = http_client is None
        self._http = http_client or httpx.AsyncClient(timeout=self.timeouts.httpx(), follow_redirects=False)

    def __repr__(self) -> str:
        return f"TokenAdmin(app_id={self.app_id!r}, root={self.root!r}, app_secret=***)"

    async def __aenter__(self) -> TokenAdmin:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    @property
    def _app_token(self) -> str:
        return f"{self.app_id}|{self._secret.get_secret_value()}"

    async def debug(self, token: str) -> TokenInfo:
        """`GET /debug_token`: the token's type, app, expiry, scopes and targets (valid or not).

        Raises `AppCredentialsError` when Graph refuses the app token, `NetworkError` / `SendTimeout` without
        an answer, and `CloudAPIError` for other refusals (5xx, ...)."""
        body = await self._get("debug_token", {"input_token": token, "access_token": self._app_token}, [token])
        data = body.get("data") if isinstance(body, Mapping) else None
        if not isinstance(data, Mapping):
            raise UnexpectedResponseError(error_info(None, http_status=200, message="debug_token answered no data"))
        info = TokenInfo.from_graph(data)
        if info.error_message:
            info = _replace_message(info, _redact(info.error_message, [token, self._secret.get_secret_value()]))
        return info

    async def exchange(self, short_lived: str) -> ExchangedToken:
        """`GET /oauth/access_token?grant_type=fb_exchange_token`: a long-lived user token for a short-lived one.

        Raises `AppCredentialsError` (wrong app id / secret), `TokenError` (the token given is expired: 190/463,
        or wrong: 190), or another `CloudClientError`."""
        params = {
            "grant_type": "fb_exchange_token",
            "client_id": self.app_id,
            "client_secret": self._secret.get_secret_value(),
            "fb_exchange_token": short_lived,
        }
        body = await self._get("oauth/access_token", params, [short_lived], about_app=frozenset({1, 101}))
        token = body.get("access_token") if isinstance(body, Mapping) else None
        if not isinstance(token, str) or not token.strip():
            raise UnexpectedResponseError(
                error_info(None, http_status=200, message="the token exchange answered no access_token")
            )
        expires = _int(body.get("expires_in"))
        return ExchangedToken(SecretStr(token.strip()), _str(body.get("token_type")) or "bearer", expires)

    async def _get(
        self, path: str, params: Mapping[str, str], tokens: Sequence[str],
        *, about_app: frozenset[int] = _APP_CREDENTIAL_CODES,
    ) -> Any:
        url = f"{self.root}/{path}"
        secrets = [*tokens, self._secret.get_secret_value(), self._app_token]
        try:
            if self.timeouts.total is not None:
                async with asyncio.timeout(self.timeouts.total):
                    response = await self._http.get(url, params=params)
            else:
                response = await self._http.get(url, params=params)
        except (httpx.TransportError, TimeoutError) as exc:
            # the URL carries secrets in its query: the error names the path only (`transport_error` does)
            error = transport_error(exc, "GET", url)
            if isinstance(error, CloudClientError):
                error.args = tuple(_redact(str(a), secrets) for a in error.args)
            raise error from None
        logger.debug("GET /%s -> %d", path, response.status_code)
        try:
            body = orjson.loads(response.content) if response.content else None
        except orjson.JSONDecodeError:
            body = None
        if response.status_code < 300 and isinstance(body, Mapping) and "error" not in body:
            return body
        if response.status_code < 300 and body is None:
            raise UnexpectedResponseError(
                error_info(None, http_status=response.status_code, message=f"/{path} answered no JSON")
            )
        info = parse_error_envelope(body, response.status_code)
        info = _redact_info(info, secrets)
        if info.code in about_app:
            raise AppCredentialsError(info)
        raise exception_for(info)


def format_time(t: float) -> str:
    """`2026-09-01 12:00 UTC`."""
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(t))


def format_remaining(seconds: float) -> str:
    """`3 days`, `5 h`, `12 min` (to the nearest unit; `less than a minute` below one)."""
    if seconds >= 1.5 * 86400:
        return f"{round(seconds / 86400)} days"
    if seconds >= 1.5 * 3600:
        return f"{round(seconds / 3600)} h"
    if seconds >= 60:
        return f"{round(seconds / 60)} min"
    return "less than a minute"


def describe_expiry(expires_at: int, now: float | None = None) -> str:
    """`never`, `2026-09-01 12:00 UTC (in 59 days)` or `2026-06-01 12:00 UTC (expired 3 days ago)`."""
    if not expires_at:
        return "never"
    now = time.time() if now is None else now
    left = expires_at - now
    when = format_time(expires_at)
    return f"{when} (in {format_remaining(left)})" if left > 0 else f"{when} (expired {format_remaining(-left)} ago)"


def _redact(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret and secret in text:
            text = text.replace(secret, _REDACTED)
    return text


def _redact_info(info: ErrorInfo, secrets: Sequence[str]) -> ErrorInfo:
    fields = ("message", "title", "details", "user_title", "user_message")
    changes: dict[str, Any] = {f: _redact(getattr(info, f), secrets) for f in fields if getattr(info, f)}
    return dataclasses.replace(info, **changes)


def _replace_message(info: TokenInfo, message: str) -> TokenInfo:
    return dataclasses.replace(info, error_message=message)


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _str(value: Any) -> str | None:
    if isinstance(value, str) and value:
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None
