"""Access tokens the emulated app knows, with their kind, lifetime and scopes, on the emulator's clock.

Kinds (as Meta issues them):

- `SYSTEM_USER`: Business settings > System users; never expires unless issued with a lifetime. The tokens
  of `EmulatorConfig.access_tokens` are of this kind, with every WhatsApp scope on the configured WABA.
- `USER`: the App Dashboard's "temporary token" (24 h by default) or a Facebook Login token; the exchange
  (`fb_exchange_token`) turns one into a long-lived `USER` token (60 days).
- `APP`: `<app_id>|<app_secret>`, or one from `grant_type=client_credentials`; for `debug_token` only.

A token whose `expires_at` has passed on the clock is answered 190/463 everywhere (sends included); an
unknown one 190 without a subcode; a revoked one 190/460. `debug_token` answers all of them inside `data`.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .graph_errors import GraphError

if TYPE_CHECKING:
    from .config import EmulatorConfig

SCOPE_MESSAGING = "whatsapp_business_messaging"
SCOPE_MANAGEMENT = "whatsapp_business_management"
ALL_SCOPES: tuple[str, ...] = ("business_management", SCOPE_MANAGEMENT, SCOPE_MESSAGING)
GRANULAR = (SCOPE_MANAGEMENT, SCOPE_MESSAGING)

DAY = 86400.0
TEMPORARY_USER_S = 24 * 3600.0  # the App Dashboard's "temporary token"
LONG_LIVED_USER_S = 60 * DAY  # what the exchange hands out
DATA_ACCESS_S = 90 * DAY

KINDS = ("SYSTEM_USER", "USER")

_MALFORMED = "Invalid OAuth access token - Cannot parse access token"


def _auth_error(message: str, subcode: int | None) -> GraphError:
    return GraphError(
        190,
        None,
        message=message,
        subcode=subcode,
        http_status=401,
        headers={"WWW-Authenticate": f'OAuth "Facebook Platform" "invalid_token" "{message}"'},
    )


def _expired_message(expires_at: float, now: float) -> str:
    def fmt(t: float) -> str:
        return time.strftime("%A, %d-%b-%y %H:%M:%S UTC", time.gmtime(t))

    return f"Error validating access token: Session has expired on {fmt(expires_at)}. The current time is {fmt(now)}."


_REVOKED = ("Error validating access token: The session has been invalidated because the user changed their "
            "password or Facebook has changed the session for security reasons.")


@dataclass(slots=True)
class TokenRecord:
    """One token the emulated app issued. `expires_at` 0 = never (emulator clock)."""

    value: str = field(repr=False)
    type: str
    issued_at: float
    expires_at: float
    scopes: tuple[str, ...]
    targets: tuple[str, ...]  # the WABA ids the WhatsApp scopes reach
    user_id: str
    revoked: bool = False

    def expired(self, now: float) -> bool:
        return bool(self.expires_at) and now >= self.expires_at


class TokenStore:
    """Every token the emulated app knows; `check` answers like Graph for a request carrying one."""

    def __init__(self, config: EmulatorConfig, clock: Callable[[], float]) -> None:
        self._config = config
        self._clock = clock
        self._records: dict[str, TokenRecord] = {}
        self._app_tokens: set[str] = set()
        for token in config.access_tokens:
            self.add(token)
        for seed in config.issued_tokens:
            self.issue(seed.type, expires_in=seed.expires_in_s, scopes=seed.scopes, targets=seed.targets,
                       value=seed.token)

    def _app_id(self) -> str:
        return self._config.app_id

    def _app_secret(self) -> str:
        return self._config.app_secret

    def _waba_id(self) -> str:
        return self._config.waba_id

    # -- issuing ---------------------------------------------------------------------------
    def issue(self, type: str = "SYSTEM_USER", *, expires_in: float | None = None,
              scopes: Iterable[str] | None = None, targets: Iterable[str] | None = None,
              value: str | None = None) -> TokenRecord:
        """A new token. `expires_in` seconds (None: never for a system user, 24 h for a user token)."""
        kind = type.upper()
        if kind not in KINDS:
            raise ValueError(f"token type must be one of {', '.join(KINDS)}")
        if expires_in is not None and expires_in <= 0:
            raise ValueError("expires_in must be positive")
        now = self._clock()
        lifetime = expires_in if expires_in is not None else (TEMPORARY_USER_S if kind == "USER" else 0.0)
        record = TokenRecord(
            value=value or "EAA" + secrets.token_urlsafe(32),
            type=kind,
            issued_at=now,
            expires_at=now + lifetime if lifetime else 0.0,
            scopes=tuple(scopes) if scopes is not None else ALL_SCOPES,
            targets=tuple(targets) if targets is not None else (self._waba_id(),),
            user_id=str(10**15 + secrets.randbelow(10**14)),
        )
        self._records[record.value] = record
        return record

    def add(self, token: str) -> None:
        """A valid, never-expiring system-user token with every scope (`access_tokens`, `tokens/add`)."""
        self.issue("SYSTEM_USER", value=token)

    def app_token(self, client_id: str | None, client_secret: str | None) -> str:
        """`grant_type=client_credentials`: an app access token."""
        self._check_app(client_id, client_secret)
        token = f"{self._app_id()}|{secrets.token_urlsafe(20)}"
        self._app_tokens.add(token)
        return token

    def exchange(self, client_id: str | None, client_secret: str | None, token: str | None) -> TokenRecord:
        """`grant_type=fb_exchange_token`: a long-lived user token for a (short-lived) user token."""
        self._check_app(client_id, client_secret)
        if not token:
            raise GraphError(100, None, message="(#100) The parameter fb_exchange_token is required")
        source = self._usable(token)
        if source.type != "USER":
            raise GraphError(100, None, message="(#100) fb_exchange_token must be a user access token")
        return self.issue("USER", expires_in=LONG_LIVED_USER_S, scopes=source.scopes, targets=source.targets)

    def _check_app(self, client_id: str | None, client_secret: str | None) -> None:
        if client_id != self._app_id():
            raise GraphError(101, None, message="Error validating application. Invalid application ID.",
                             http_status=400)
        if not client_secret or not secrets.compare_digest(client_secret.encode(), self._app_secret().encode()):
            raise GraphError(1, None, message="Error validating client secret.", http_status=400)

    # -- checking --------------------------------------------------------------------------
    def is_app_token(self, token: str | None) -> bool:
        if not token:
            return False
        own = f"{self._app_id()}|{self._app_secret()}"
        return secrets.compare_digest(token.encode(), own.encode()) or token in self._app_tokens

    def check(self, token: str | None) -> TokenRecord | None:
        """The record of a token Graph would accept; GraphError 104 / 190 / 190-463 / 190-460 otherwise.
        An app token is accepted (None: it has no WhatsApp scope, which the caller checks)."""
        if not token:
            raise GraphError(104, None, message="An access token is required to request this resource.",
                             http_status=401)
        if self.is_app_token(token):
            return None
        return self._usable(token)

    def _usable(self, token: str) -> TokenRecord:
        record = self._records.get(token)
        if record is None:
            raise _auth_error(_MALFORMED, None)
        if record.revoked:
            raise _auth_error(_REVOKED, 460)
        now = self._clock()
        if record.expired(now):
            raise _auth_error(_expired_message(record.expires_at, now), 463)
        return record

    def is_valid(self, token: str | None) -> bool:
        record = self._records.get(token or "")
        return record is not None and not record.revoked and not record.expired(self._clock())

    def get(self, token: str) -> TokenRecord | None:
        return self._records.get(token)

    def debug(self, token: str | None) -> dict[str, Any]:
        """The `data` of `GET /debug_token?input_token=...` (valid or not, like Graph)."""
        if not token:
            raise GraphError(100, None, message="(#100) The parameter input_token is required")
        app_id = self._app_id()
        if self.is_app_token(token):
            return {"app_id": app_id, "type": "APP", "application": self._application(), "is_valid": True,
                    "scopes": []}
        record = self._records.get(token)
        if record is None:
            return {"error": {"code": 190, "message": _MALFORMED}, "is_valid": False, "scopes": []}
        now = self._clock()
        data: dict[str, Any] = {
            "app_id": app_id,
            "type": record.type,
            "application": self._application(),
            "data_access_expires_at": int(record.issued_at + DATA_ACCESS_S) if record.type == "USER" else 0,
            "expires_at": int(record.expires_at),
            "is_valid": True,
            "issued_at": int(record.issued_at),
            "scopes": list(record.scopes),
            "granular_scopes": [{"scope": s, "target_ids": list(record.targets)} for s in GRANULAR
                                if s in record.scopes],
            "user_id": record.user_id,
        }
        if record.revoked:
            data["is_valid"] = False
            data["error"] = {"code": 190, "message": _REVOKED, "subcode": 460}
        elif record.expired(now):
            data["is_valid"] = False
            data["error"] = {"code": 190, "message": _expired_message(record.expires_at, now), "subcode": 463}
        return data

    def _application(self) -> str:
        return self._config.app_name

    # -- levers ----------------------------------------------------------------------------
    def expire(self, token: str) -> None:
        """The token's time runs out now (190/463 from here on)."""
        record = self._records.get(token)
        if record is None:
            record = self.issue("SYSTEM_USER", value=token)
        now = self._clock()
        record.expires_at = min(record.expires_at, now) if record.expires_at else now

    def revoke(self, token: str) -> None:
        """The token is invalidated (190/460), as after a password change."""
        record = self._records.get(token)
        if record is not None:
            record.revoked = True

    def rotate(self, expire_old: bool = True) -> str:
        """A fresh valid token; the old ones expire so a client must pick up the new one."""
        if expire_old:
            for value, record in list(self._records.items()):
                if not record.expired(self._clock()):
                    self.expire(value)
        return self.issue("SYSTEM_USER").value

    def __repr__(self) -> str:
        now = self._clock()
        valid = sum(1 for r in self._records.values() if not r.revoked and not r.expired(now))
        return f"TokenStore(valid={valid}, other={len(self._records) - valid})"
