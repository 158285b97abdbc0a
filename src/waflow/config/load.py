"""Loading the settings: find `waflow.toml`, parse it, overlay `WAFLOW_*`, and report every problem by name."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from waflow.config.model import Settings

CONFIG_ENV = "WAFLOW_CONFIG"
DEFAULT_FILE = "waflow.toml"

_MESSAGES = {
    "missing": "is required",
    "extra_forbidden": "is not a known setting",
}


class ConfigError(Exception):
    """The configuration is wrong; `problems` are lines like `numbers[0].app_secret: environment variable ...`."""

    def __init__(self, problems: list[str], source: str | None = None) -> None:
        self.problems = problems
        self.source = source
        super().__init__(self.render())

    def render(self) -> str:
        head = f"configuration error ({self.source})" if self.source else "configuration error"
        return head + ":\n" + "\n".join(f"  {p}" for p in self.problems)


def _path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _strip_prefix(msg: str) -> str:
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            return msg[len(prefix):]
    return msg


def describe_errors(exc: ValidationError) -> list[str]:
    """One line per problem, naming the setting (`numbers[0].throughput: ...`); never echoes a value."""
    problems: list[str] = []
    for err in exc.errors(include_input=False, include_url=False):
        loc = tuple(err["loc"])
        msg = _MESSAGES.get(err["type"], _strip_prefix(err["msg"]))
        where = _path(loc)
        # a model validator's message may already name its field ("numbers[1].phone_number_id: ...")
        if where and msg.startswith("["):  # an item of a list setting: "api.keys[0]: ..."
            problems.append(f"{where}{msg}")
        else:
            problems.append(f"{where}: {msg}" if where and not msg.startswith(where) else msg)
    return problems


def find_config_file(
    explicit: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None
) -> Path | None:
    """`explicit`, else `WAFLOW_CONFIG`, else `./waflow.toml` when it exists, else None (environment only)."""
    env = os.environ if environ is None else environ
    if explicit is not None:
        return Path(explicit)
    if env.get(CONFIG_ENV):
        return Path(env[CONFIG_ENV])
    default = Path(DEFAULT_FILE)
    return default if default.is_file() else None


def read_toml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        raise ConfigError([f"config file {path} does not exist"]) from None
    except OSError as exc:
        raise ConfigError([f"config file {path} is unreadable ({exc.strerror})"]) from None
    except UnicodeDecodeError:
        raise ConfigError([f"config file {path} is not UTF-8 text"]) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: not valid TOML: {exc}"]) from None


def load_settings(
    path: str | os.PathLike[str] | None = None,
    *,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """The settings from the file (see `find_config_file`) with `WAFLOW_*` variables over it.

    `overrides` (tests, CLI flags) are applied over the file, under the environment. Raises
    `ConfigError` listing every problem.
    """
    file = find_config_file(path)
    data: dict[str, Any] = read_toml(file) if file is not None else {}
    if overrides:
        data = _merge(data, dict(overrides))
    source = str(file) if file is not None else "environment"
    try:
        return Settings(**data)
    except ValidationError as exc:
        raise ConfigError(describe_errors(exc), source) from None


def _merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out
