"""The one-off token operations behind `waflow token check` and `waflow token exchange`.

`inspect_token(settings, index)`: what Graph's `debug_token` says about a number's token and what stands
between it and the number (`TokenReport`). `exchange_token(settings, index)`: a long-lived user token for a
short-lived one, written atomically (temporary file + rename, mode 0600) where the number's `token =
"file:/path"` points; for an `env:` or literal reference the caller shows the operator what to do.

Every failure is a `TokenToolError` with one line naming what is wrong; no text here contains a token or
the app secret.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import SecretStr

from waflow.cloudapi import CloudClientError, Timeouts, TokenError
from waflow.cloudapi.errors import TokenProblem, token_problem_text
from waflow.cloudapi.token_info import AppCredentialsError, Finding, TokenAdmin, TokenInfo, assess, format_time
from waflow.config import NumberSettings, Settings
from waflow.config.secrets import ENV_PREFIX, FILE_PREFIX, SecretUnavailable, kind_of, resolve_secret
from waflow.server.token_watch import unchecked_reason


class TokenToolError(Exception):
    """A token operation could not be done; the message is one line for the operator."""


@dataclass
class TokenReport:
    index: int
    number: NumberSettings
    info: TokenInfo | None = None
    findings: list[Finding] = field(default_factory=list)
    failure: str | None = None  # the token could not be looked at (settings, unreadable, Graph unreachable)

    @property
    def label(self) -> str:
        return f"numbers[{self.index}] ({self.number.phone_number_id})"

    @property
    def errors(self) -> list[str]:
        out = [self.failure] if self.failure else []
        return out + [f.text for f in self.findings if f.level == "error"]

    @property
    def warnings(self) -> list[str]:
        return [f.text for f in self.findings if f.level == "warning"]


def pick_numbers(settings: Settings, phone_number_id: str | None) -> list[tuple[int, NumberSettings]]:
    """Every number, or the one named; `TokenToolError` naming the configured ids for an unknown one."""
    numbers = list(enumerate(settings.numbers))
    if phone_number_id is None:
        return numbers
    chosen = [(i, n) for i, n in numbers if n.phone_number_id == phone_number_id]
    if not chosen:
        known = ", ".join(n.phone_number_id for n in settings.numbers)
        raise TokenToolError(f"--number {phone_number_id}: not a configured phone_number_id (configured: {known})")
    return chosen


def pick_one(settings: Settings, phone_number_id: str | None) -> tuple[int, NumberSettings]:
    numbers = pick_numbers(settings, phone_number_id)
    if len(numbers) > 1:
        known = ", ".join(n.phone_number_id for _, n in numbers)
        raise TokenToolError(f"{len(numbers)} numbers are configured: name one with --number ({known})")
    return numbers[0]


def _admin(settings: Settings, index: int, number: NumberSettings) -> TokenAdmin:
    reason = unchecked_reason(index, number)
    if reason is not None:
        raise TokenToolError(f"numbers[{index}] ({number.phone_number_id}): cannot ask Graph about the token: {reason}")
    assert number.app_id is not None
    return TokenAdmin(
        app_id=number.app_id, app_secret=number.app_secret, base_url=settings.graph.base_url,
        api_version=settings.graph.api_version,
        timeouts=Timeouts(read=settings.graph.timeout_s, total=settings.graph.timeout_s + 5),
    )


def _configured_token(index: int, number: NumberSettings) -> str:
    try:
        return resolve_secret(number.token.get_secret_value())
    except SecretUnavailable as exc:
        raise TokenToolError(f"numbers[{index}].token: {exc}") from None


def _graph_failure(label: str, index: int, what: str, exc: CloudClientError) -> TokenToolError:
    if isinstance(exc, AppCredentialsError):
        return TokenToolError(f"{label}: {what}: {exc}: check numbers[{index}].app_id and numbers[{index}].app_secret")
    return TokenToolError(f"{label}: {what}: {exc}")


async def inspect_token(settings: Settings, index: int, number: NumberSettings) -> TokenReport:
    """`debug_token` for the number's configured token, assessed for what the number needs."""
    report = TokenReport(index, number)
    try:
        admin = _admin(settings, index, number)
        token = _configured_token(index, number)
    except TokenToolError as exc:
        report.failure = str(exc)
        return report
    async with admin:
        try:
            report.info = await admin.debug(token)
        except CloudClientError as exc:
            report.failure = str(_graph_failure(report.label, index, "cannot check the access token", exc))
            return report
    report.findings = assess(report.info, waba_id=number.waba_id, app_id=number.app_id)
    return report


@dataclass
class Exchanged:
    """A long-lived token, and where it went."""

    token: SecretStr = field(repr=False)
    expires_at: int | None  # Unix seconds (0 = never); None: Graph did not say
    reference_kind: str  # "file" | "env" | "literal": the number's token reference
    reference: str  # the file path or variable name ("" for a literal)
    written_to: Path | None = None


class NothingToExchange(TokenToolError):
    """The token is not a user token (a system user token is not exchanged)."""


async def exchange_token(
    settings: Settings, index: int, number: NumberSettings, token: str | None = None, *, now: float
) -> tuple[SecretStr, int | None]:
    """Exchange `token` (default: the number's configured one) for a long-lived user token: the token and its
    expiry (Unix seconds; None when Graph did not say). `place_token` puts it where the number reads it."""
    label = f"numbers[{index}] ({number.phone_number_id})"
    admin = _admin(settings, index, number)
    source = token.strip() if token is not None else _configured_token(index, number)
    if not source:
        raise TokenToolError("--token: must not be empty")
    async with admin:
        try:
            info = await admin.debug(source)
        except CloudClientError as exc:
            raise _graph_failure(label, index, "cannot check the token to exchange", exc) from None
        if info.problem is not None:
            expired_at = format_time(info.expires_at) if info.expires_at else None
            text = info.problem_text(expired_at)
            hint = ("; a user token can only be exchanged while it is valid: get a new one (App Dashboard > "
                    "WhatsApp > API Setup)") if info.problem is TokenProblem.EXPIRED else ""
            raise TokenToolError(f"{label}: the token to exchange is not usable: {text}{hint}")
        if info.type != "USER":
            expiry = "never expires" if info.never_expires else f"expires {format_time(info.expires_at)}"
            raise NothingToExchange(f"{label}: nothing to exchange: this is a {info.kind} token ({expiry}); only "
                                    "user tokens are exchanged for long-lived ones")
        try:
            exchanged = await admin.exchange(source)
        except TokenError as exc:
            problem = exc.token_problem or TokenProblem.INVALID
            raise TokenToolError(f"{label}: Graph refused the exchange: "
                                 f"{token_problem_text(problem, subcode=exc.subcode)}") from None
        except CloudClientError as exc:
            raise _graph_failure(label, index, "the exchange failed", exc) from None
        expires_at: int | None = int(now + exchanged.expires_in) if exchanged.expires_in else None
        with contextlib.suppress(CloudClientError):
            expires_at = (await admin.debug(exchanged.access_token.get_secret_value())).expires_at
    return exchanged.access_token, expires_at


def place_token(number: NumberSettings, token: SecretStr, expires_at: int | None) -> Exchanged:
    """Write the token to the number's token file when its reference is `file:/path` (atomically); otherwise
    only say where the reference points (`env:` variable, or a literal), for the operator to act."""
    ref = number.token.get_secret_value()
    kind = kind_of(ref)
    result = Exchanged(token, expires_at, kind, "")
    if kind == "file":
        path = Path(ref[len(FILE_PREFIX):].strip()).expanduser()
        result.reference = str(path)
        write_secret_file(path, token.get_secret_value())
        result.written_to = path
    elif kind == "env":
        result.reference = ref[len(ENV_PREFIX):].strip()
    return result


def write_secret_file(path: Path, value: str) -> None:
    """Replace `path` atomically with `value` (a temporary file beside it, mode 0600, fsync'd, renamed over it):
    a reader sees the old token or the new one, never half of one."""
    folder = path.parent
    temp = folder / f".{path.name}.{secrets.token_hex(4)}.tmp"
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, (value + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, path)
        with contextlib.suppress(OSError):
            dir_fd = os.open(folder, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
    except OSError as exc:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise TokenToolError(f"cannot write the token file {path}: {exc.strerror or type(exc).__name__}") from None
