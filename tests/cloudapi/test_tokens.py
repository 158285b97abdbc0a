"""Token providers: where tokens come from, and that none of them ever shows a token."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from waflow.cloudapi import (
    CallableTokenProvider,
    EnvTokenProvider,
    FileTokenProvider,
    StaticTokenProvider,
    TokenProvider,
    TokenUnavailableError,
    as_token_provider,
)

SECRET = "EAAtop-secret-token"


async def test_static() -> None:
    p = StaticTokenProvider(SECRET)
    assert await p.get_token() == SECRET and await p.get_token(refresh=True) == SECRET
    assert SECRET not in repr(p) and SECRET not in str(p)
    with pytest.raises(TokenUnavailableError):
        StaticTokenProvider("  ")


async def test_env(monkeypatch: pytest.MonkeyPatch) -> None:
    p = EnvTokenProvider("WAFLOW_TEST_TOKEN")
    monkeypatch.delenv("WAFLOW_TEST_TOKEN", raising=False)
    with pytest.raises(TokenUnavailableError, match="WAFLOW_TEST_TOKEN is not set"):
        await p.get_token()
    monkeypatch.setenv("WAFLOW_TEST_TOKEN", SECRET + "\n")
    assert await p.get_token() == SECRET
    monkeypatch.setenv("WAFLOW_TEST_TOKEN", "rotated")
    assert await p.get_token(refresh=True) == "rotated"
    assert SECRET not in repr(p) and "rotated" not in repr(p)


async def test_file_is_reread_when_mtime_changes(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text(SECRET + "\n")
    p = FileTokenProvider(path)
    assert await p.get_token() == SECRET
    path.write_text("second")
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert await p.get_token() == "second"
    assert SECRET not in repr(p) and "second" not in repr(p) and str(path) in repr(p)


async def test_file_same_mtime_is_cached_but_refresh_rereads(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("one")
    p = FileTokenProvider(path)
    assert await p.get_token() == "one"
    st = path.stat()
    path.write_text("two")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # same mtime: cached value stands
    assert await p.get_token() == "one"
    assert await p.get_token(refresh=True) == "two"


async def test_file_missing_or_empty(tmp_path: Path) -> None:
    with pytest.raises(TokenUnavailableError, match="unreadable"):
        await FileTokenProvider(tmp_path / "nope").get_token()
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(TokenUnavailableError, match="holds no access token"):
        await FileTokenProvider(tmp_path / "empty").get_token()


async def test_callable_sync_and_async() -> None:
    calls = []

    def sync() -> str:
        calls.append(1)
        return f"tok{len(calls)}"

    async def asynchronous() -> str:
        return SECRET

    p = CallableTokenProvider(sync)
    assert await p.get_token() == "tok1" and await p.get_token(refresh=True) == "tok2"
    assert await CallableTokenProvider(asynchronous).get_token() == SECRET
    assert SECRET not in repr(CallableTokenProvider(asynchronous))
    with pytest.raises(TokenUnavailableError):
        await CallableTokenProvider(lambda: 42).get_token()  # type: ignore[arg-type,return-value]


def test_as_token_provider() -> None:
    assert isinstance(as_token_provider(SECRET), StaticTokenProvider)
    assert isinstance(as_token_provider(lambda: SECRET), CallableTokenProvider)
    env = EnvTokenProvider()
    assert as_token_provider(env) is env
    assert isinstance(env, TokenProvider)
    with pytest.raises(TypeError):
        as_token_provider(42)  # type: ignore[arg-type]
