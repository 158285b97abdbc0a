"""`X-Hub-Signature-256` checking (reference §6).

`verify_signature` is the primitive: HMAC-SHA256 of the raw body bytes with the app secret,
compared in constant time with the header's hex digest. Nothing is decoded or re-encoded first:
Meta signs the body exactly as sent (ASCII-escaped JSON).

`SignatureVerifier` serves a deployment with several numbers of several apps. It must check
the signature before trusting anything in the body, so it takes a cheap *hint* from the raw
bytes — the first `"phone_number_id":"<digits>"` (messages field) or, failing that, the first
entry `"id"` (WABA id, other fields) — and tries that app's secret first, then every other
configured app secret, each compared in constant time. A hint only orders the attempts; it
never grants anything. Once a secret matches, the caller parses the body and checks with
`app_serves` that every number / WABA in it belongs to the app whose secret signed it (a body
about one app's number signed with another app's secret is refused).
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import re
from dataclasses import dataclass

from waflow.webhooks.config import WebhookConfig

SIGNATURE_HEADER = "x-hub-signature-256"
_PREFIX = "sha256="
_HINT_PNID = re.compile(rb'"phone_number_id"\s*:\s*"(\d{1,32})"')
_HINT_WABA = re.compile(rb'"entry"\s*:\s*\[\s*\{[^{}\[\]]{0,200}?"id"\s*:\s*"(\d{1,32})"')


def verify_signature(raw: bytes, header: str | None, app_secret: str | bytes) -> bool:
    """True when `header` is `sha256=<hex HMAC-SHA256(app_secret, raw)>` (constant-time compare)."""
    if not header or not header.startswith(_PREFIX):
        return False
    key = app_secret.encode() if isinstance(app_secret, str) else app_secret
    expected = hmac.new(key, raw, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header[len(_PREFIX) :].strip().lower())


def sign(raw: bytes, app_secret: str | bytes) -> str:
    """The header value Meta would send for `raw` (for tests, the emulator and benchmarks)."""
    key = app_secret.encode() if isinstance(app_secret, str) else app_secret
    return _PREFIX + hmac.new(key, raw, hashlib.sha256).hexdigest()


class SignatureOutcome(enum.StrEnum):
    OK = "ok"
    MISSING = "missing_signature"  # no X-Hub-Signature-256 (a legacy sha1 header alone counts as missing)
    MALFORMED = "malformed_signature"  # present but not sha256=<64 hex>
    MISMATCH = "bad_signature"  # no configured app secret produces it


@dataclass(frozen=True, slots=True)
class SignatureCheck:
    outcome: SignatureOutcome
    app: int | None = None  # index of the app (distinct secret) that signed the body


class SignatureVerifier:
    """Finds which configured app signed a body, trying the hinted app's secret first."""

    def __init__(self, config: WebhookConfig) -> None:
        secrets: list[bytes] = []
        self._app_of_number: dict[str, int] = {}
        self._apps_of_waba: dict[str, set[int]] = {}
        for pnid, number in config.numbers.items():
            secret = number.app_secret.get_secret_value().encode()
            if secret not in secrets:
                secrets.append(secret)
            app = secrets.index(secret)
            self._app_of_number[pnid] = app
            if number.waba_id:
                self._apps_of_waba.setdefault(number.waba_id, set()).add(app)
        self._secrets = tuple(secrets)

    def __repr__(self) -> str:
        return f"SignatureVerifier(apps={len(self._secrets)}, numbers={len(self._app_of_number)})"

    def _hinted_apps(self, raw: bytes) -> list[int]:
        head = raw[:65536]
        m = _HINT_PNID.search(head)
        if m is not None:
            app = self._app_of_number.get(m.group(1).decode())
            if app is not None:
                return [app]
        m = _HINT_WABA.search(head)
        if m is not None:
            return sorted(self._apps_of_waba.get(m.group(1).decode(), ()))
        return []

    def hinted_phone_number_id(self, raw: bytes) -> str | None:
        """The first phone_number_id the raw bytes seem to name (unverified: for filing only)."""
        m = _HINT_PNID.search(raw[:65536])
        return m.group(1).decode() if m is not None else None

    def check(self, raw: bytes, header: str | None) -> SignatureCheck:
        if not header:
            return SignatureCheck(SignatureOutcome.MISSING)
        header = header.strip()
        hexpart = header[len(_PREFIX) :] if header.startswith(_PREFIX) else ""
        if len(hexpart) != 64 or any(c not in "0123456789abcdefABCDEF" for c in hexpart):
            return SignatureCheck(SignatureOutcome.MALFORMED)
        given = hexpart.lower()
        hinted = self._hinted_apps(raw)
        order = hinted + [i for i in range(len(self._secrets)) if i not in hinted]
        for app in order:
            expected = hmac.new(self._secrets[app], raw, hashlib.sha256).hexdigest()
            if hmac.compare_digest(expected, given):
                return SignatureCheck(SignatureOutcome.OK, app)
        return SignatureCheck(SignatureOutcome.MISMATCH)

    def app_serves(self, app: int, phone_number_ids: set[str], waba_ids: set[str]) -> bool:
        """Whether every configured number / WABA named in a body belongs to `app`.

        Numbers and WABAs the configuration does not know are not judged here: their events are
        dropped before anything is written (`waflow.webhooks.scope`).
        """
        for pnid in phone_number_ids:
            owner = self._app_of_number.get(pnid)
            if owner is not None and owner != app:
                return False
        for waba in waba_ids:
            apps = self._apps_of_waba.get(waba)
            if apps is not None and app not in apps:
                return False
        return True


def verify_token_matches(config: WebhookConfig, token: str | None) -> bool:
    """Whether `token` is the verify token of any configured number (constant-time per token)."""
    if not token:
        return False
    given = token.encode()
    ok = False
    for number in config.numbers.values():
        ok |= hmac.compare_digest(number.verify_token.get_secret_value().encode(), given)
    return ok
