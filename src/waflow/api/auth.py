"""Bearer API keys: the presented key is hashed and compared in constant time with every configured hash."""

from __future__ import annotations

import hashlib
import hmac

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from waflow.api.context import ApiContext
from waflow.api.errors import ApiError

_bearer = HTTPBearer(auto_error=False, description="an admin API key from `api.keys`")


def key_digest(presented: str) -> str:
    """The `sha256:<hex>` form of a presented key (what `api.keys` stores)."""
    return "sha256:" + hashlib.sha256(presented.encode("utf-8", "surrogatepass")).hexdigest()


def matching_key(presented: str, hashes: list[str] | tuple[str, ...]) -> str | None:
    """The configured hash that `presented` matches, or None; every hash is compared, in constant time."""
    digest = key_digest(presented)
    found: str | None = None
    for stored in hashes:  # no early exit: the time does not tell which key matched
        if hmac.compare_digest(digest, stored):
            found = stored
    return found


def key_matches(presented: str, hashes: list[str] | tuple[str, ...]) -> bool:
    return matching_key(presented, hashes) is not None


def bearer_credentials(authorization: str | None) -> str | None:
    """The key of an `Authorization: Bearer <key>` header value (scheme case-insensitive), else None."""
    if not authorization:
        return None
    scheme, _, credentials = authorization.partition(" ")
    credentials = credentials.strip()
    if scheme.lower() != "bearer" or not credentials:
        return None
    return credentials


def context(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.api
    return ctx


async def require_key(
    request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)
) -> None:
    """401 without a key or with a wrong one (same answer for both)."""
    ctx = context(request)
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise ApiError(401, "unauthorized", "an API key is required: Authorization: Bearer <key>")
    if not key_matches(credentials.credentials, tuple(ctx.key_hashes)):
        raise ApiError(401, "unauthorized", "the API key is not valid")
    request.state.api_key = key_fingerprint(credentials.credentials)


def key_fingerprint(presented: str) -> str:
    """Names a key in records (who opted a contact out): the start of its configured hash, never the key."""
    return "key:" + hashlib.sha256(presented.encode("utf-8", "surrogatepass")).hexdigest()[:12]
