"""Durations as flow files write them: `45s`, `30m`, `2h`, `1d`, `1h30m` (or whole seconds as a number)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_PART = re.compile(r"(\d+)\s*([smhdw])")
DURATION_PATTERN = r"^\s*(\d+\s*[smhdw]\s*)+$"
_WHOLE = re.compile(DURATION_PATTERN)
MAX_DURATION = timedelta(days=366)


def parse_duration(value: Any) -> timedelta:
    """`"1h30m"` → `timedelta(hours=1, minutes=30)`; raises `ValueError` with a readable message."""
    if isinstance(value, timedelta):
        result = value
    elif isinstance(value, bool):
        raise ValueError("a duration is a string like '30s', '15m', '2h', '1d'")
    elif isinstance(value, int):
        result = timedelta(seconds=value)
    elif isinstance(value, str):
        text = value.strip().lower()
        if not _WHOLE.match(text):
            raise ValueError(f"invalid duration {value!r}: write it like '45s', '30m', '2h', '1d' or '1h30m'")
        seconds = sum(int(n) * _UNITS[u] for n, u in _PART.findall(text))
        result = timedelta(seconds=seconds)
    else:
        raise ValueError("a duration is a string like '30s', '15m', '2h', '1d'")
    if result <= timedelta(0):
        raise ValueError(f"duration {value!r} must be positive")
    if result > MAX_DURATION:
        raise ValueError(f"duration {value!r} is longer than the maximum of {MAX_DURATION.days} days")
    return result


def format_duration(value: timedelta) -> str:
    """The shortest canonical text: `timedelta(minutes=90)` → `"1h30m"`."""
    seconds = int(value.total_seconds())
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": DURATION_PATTERN, "examples": ["45s", "30m", "2h", "1d", "1h30m"]},
                {"type": "integer", "minimum": 1, "description": "seconds"},
            ],
            "description": "A duration: '45s', '30m', '2h', '1d', '1h30m', or whole seconds.",
        }
    ),
]
