"""Where the client gets its access token from.

A `TokenProvider` answers `await provider.get_token(refresh=...)`. The client caches the answer
and asks again with `refresh=True` only after Graph rejected the cached token (401 / code 190),
so a provider may do something expensive (read a file, call a vault) on refresh.

Tokens are secrets: no provider's repr, str or error message ever contains one.
"""

from __future__ import annotations

import asyncio
import inspect
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Protocol, runtime_checkable


class TokenUnavailableError(RuntimeError):
    """A provider could not produce a token (variable unset, file missing or empty, ...)."""


@runtime_checkable
class TokenProvider(Protocol):
    async def get_token(self, *, refresh: bool = False) -> str:
        """The current token. `refresh=True`: the previous answer was rejected; look again."""
        ...


def _check(token: str, source: str) -> str:
    token = token.strip()
    if not token:
        raise TokenUnavailableError(f"{source} holds no access token")
    return token


class StaticTokenProvider:
    """A fixed token (tests, long-lived system-user tokens)."""

    __slots__ = ("_token",)

    def __init__(self, token: str) -> None:
        self._token = _check(token, "the static token")

    async def get_token(self, *, refresh: bool = False) -> str:
        return self._token

    def __repr__(self) -> str:
        return "StaticTokenProvider(token=***)"


class EnvTokenProvider:
    """Reads an environment variable on every (re)fetch, so an operator can rotate it in-process."""

    __slots__ = ("_var",)

    def __init__(self, var: str = "WHATSAPP_ACCESS_TOKEN") -> None:
        self._var = var

    async def get_token(self, *, refresh: bool = False) -> str:
        value = os.environ.get(self._var)
        if value is None:
            raise TokenUnavailableError(f"environment variable {self._var} is not set")
        return _check(value, f"environment variable {self._var}")

    def __repr__(self) -> str:
        return f"EnvTokenProvider(var={self._var!r})"


class FileTokenProvider:
    """Reads a token file (e.g. a mounted Kubernetes secret), again whenever its mtime changes."""

    __slots__ = ("_cached", "_mtime_ns", "_path")

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._path = Path(path)
        self._cached: str | None = None
        self._mtime_ns: int | None = None

    async def get_token(self, *, refresh: bool = False) -> str:
        try:
            mtime = self._path.stat().st_mtime_ns
        except OSError as exc:
            raise TokenUnavailableError(f"token file {self._path} is unreadable: {exc.strerror}") from None
        # A rejected token is re-read even without an mtime change: a secret swapped by rename can
        # keep its mtime on some filesystems, and a re-read is cheap.
        if self._cached is None or refresh or mtime != self._mtime_ns:
            try:
                text = await asyncio.to_thread(self._path.read_text, "utf-8")
            except OSError as exc:
                raise TokenUnavailableError(f"token file {self._path} is unreadable: {exc.strerror}") from None
            self._cached = _check(text, f"token file {self._path}")
            self._mtime_ns = mtime
        return self._cached

    def __repr__(self) -> str:
        return f"FileTokenProvider(path={str(self._path)!r})"


TokenFunc = Callable[[], str] | Callable[[], Awaitable[str]]


class CallableTokenProvider:
    """Calls a function (sync or async) for every (re)fetch: a vault lookup, an OAuth exchange."""

    __slots__ = ("_func",)

    def __init__(self, func: TokenFunc) -> None:
        self._func = func

    async def get_token(self, *, refresh: bool = False) -> str:
        result = self._func()
        if inspect.isawaitable(result):
            result = await result
        if not isinstance(result, str):
            raise TokenUnavailableError("the token callable did not return a string")
        return _check(result, "the token callable")

    def __repr__(self) -> str:
        name = getattr(self._func, "__qualname__", type(self._func).__name__)
        return f"CallableTokenProvider(func={name})"


def as_token_provider(token: str | TokenProvider | TokenFunc) -> TokenProvider:
    """Accept a raw token, a provider, or a callable wherever a provider is expected."""
    if isinstance(token, str):
        return StaticTokenProvider(token)
    if isinstance(token, TokenProvider):
        return token
    if callable(token):
        return CallableTokenProvider(token)
    raise TypeError(f"cannot use {type(token).__name__} as a token provider")
