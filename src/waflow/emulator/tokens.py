"""Access tokens Meta would accept: valid, expired (190/463) or unknown (190)."""

from __future__ import annotations

import secrets

from .graph_errors import GraphError


def _auth_error(message: str, subcode: int | None) -> GraphError:
    return GraphError(
        190,
        None,
        message=message,
        subcode=subcode,
        http_status=401,
        headers={"WWW-Authenticate": f'OAuth "Facebook Platform" "invalid_token" "{message}"'},
    )


class TokenStore:
    def __init__(self, tokens: list[str]) -> None:
        self._valid: set[str] = set(tokens)
        self._expired: set[str] = set()

    def check(self, token: str | None) -> None:
        if not token:
            raise GraphError(104, None, message="An access token is required to request this resource.",
                             http_status=401)
        if token in self._valid:
            return
        if token in self._expired:
            raise _auth_error(
                "Error validating access token: Session has expired. The current time is later than the "
                "token's expiry time.",
                463,
            )
        raise _auth_error("Invalid OAuth access token - Cannot parse access token", None)

    def is_valid(self, token: str | None) -> bool:
        return token is not None and token in self._valid

    def expire(self, token: str) -> None:
        self._valid.discard(token)
        self._expired.add(token)

    def add(self, token: str) -> None:
        self._expired.discard(token)
        self._valid.add(token)

    def rotate(self, expire_old: bool = True) -> str:
        """A fresh valid token; the old ones expire so a client must pick up the new one."""
        new = "EAA" + secrets.token_urlsafe(32)
        if expire_old:
            for t in list(self._valid):
                self.expire(t)
        self.add(new)
        return new

    def __repr__(self) -> str:
        return f"TokenStore(valid={len(self._valid)}, expired={len(self._expired)})"
