"""Secret references in the configuration: `env:VAR`, `file:/path`, or the value itself (discouraged).

A reference is resolved once at startup (`resolve_secret`) so that a missing variable or an unreadable
file is a startup error that names it. Access tokens keep their reference (`token_provider`) so that a
rotated variable or file is picked up on the client's refresh, without a restart.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import SecretStr

from waflow.cloudapi.tokens import EnvTokenProvider, FileTokenProvider, StaticTokenProvider, TokenProvider

ENV_PREFIX = "env:"
FILE_PREFIX = "file:"


class SecretUnavailable(ValueError):
    """A secret reference points at nothing usable; the message names the variable or file, never a value."""


def kind_of(ref: str) -> str:
    """`"env"`, `"file"` or `"literal"`."""
    if ref.startswith(ENV_PREFIX):
        return "env"
    if ref.startswith(FILE_PREFIX):
        return "file"
    return "literal"


def resolve_secret(ref: str) -> str:
    """The value a reference points at; `SecretUnavailable` when it is unset, unreadable or empty."""
    kind = kind_of(ref)
    if kind == "env":
        var = ref[len(ENV_PREFIX):].strip()
        if not var:
            raise SecretUnavailable("`env:` needs a variable name, e.g. env:WA_SECRET")
        value = os.environ.get(var)
        if value is None:
            raise SecretUnavailable(f"environment variable {var} is not set")
        if not value.strip():
            raise SecretUnavailable(f"environment variable {var} is empty")
        return value.strip()
    if kind == "file":
        path = Path(ref[len(FILE_PREFIX):].strip()).expanduser()
        try:
            value = path.read_text("utf-8").strip()
        except OSError as exc:
            raise SecretUnavailable(f"file {path} is unreadable ({exc.strerror or type(exc).__name__})") from None
        except UnicodeDecodeError:
            raise SecretUnavailable(f"file {path} is not UTF-8 text") from None
        if not value:
            raise SecretUnavailable(f"file {path} is empty")
        return value
    if not ref.strip():
        raise SecretUnavailable("must not be empty")
    return ref.strip()


def resolve(secret: SecretStr) -> SecretStr:
    return SecretStr(resolve_secret(secret.get_secret_value()))


def token_provider(ref: SecretStr) -> TokenProvider:
    """A token provider that follows the reference (re-reading the variable or file on refresh)."""
    raw = ref.get_secret_value()
    kind = kind_of(raw)
    if kind == "env":
        return EnvTokenProvider(raw[len(ENV_PREFIX):].strip())
    if kind == "file":
        return FileTokenProvider(Path(raw[len(FILE_PREFIX):].strip()).expanduser())
    return StaticTokenProvider(raw)
