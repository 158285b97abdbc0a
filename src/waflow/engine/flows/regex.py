"""The regexes of flows — regex triggers and question `validate: {regex: ...}` — matched in linear time.

Python's `re` backtracks: `^(a+)+$` against 27 `a`s and a `!` takes seconds, on the event loop. Flow regexes
run in RE2 (`google-re2`) instead, whose matching time is linear in the text: it has no backreferences and no
look-around (`(?=…)`, `(?<!…)`), and spells "end of text" `\\z` (Python's `\\Z`). A pattern RE2 cannot compile
is refused when the flow is validated (`bad-regex`, with the node / field and line), and so is one whose
compiled program is larger than `MAX_PROGRAM` instructions: linear, but with a constant large enough to take
seconds on a long text (`(a|b|.){1000}x`). A text longer than `MAX_TEXT` characters (WhatsApp's limit for a
text message) never matches.

Differences from Python's `re` a flow author may notice: `\\d`, `\\w`, `\\s` and `\\b` are ASCII-only (use
`\\p{Nd}`, `\\p{L}` for other scripts), and `$` is the end of the text only (not before a final newline).
"""

from __future__ import annotations

import functools
import logging
import re
from dataclasses import dataclass
from typing import Any

import re2  # type: ignore[import-untyped]

log = logging.getLogger(__name__)
MAX_PROGRAM = 2_000  # RE2 program instructions (`\p{L}+` is about 1,200)
MAX_MEMORY = 4 << 20  # bytes RE2 may use for one pattern (program and DFA cache)
MAX_TEXT = 4_096


class PatternError(ValueError):
    """A pattern that cannot be matched in linear time; the message says why."""


@dataclass(frozen=True, slots=True)
class LinearRegex:
    pattern: str
    ignore_case: bool
    _compiled: Any

    def search(self, text: str) -> bool:
        """Whether the pattern occurs in `text`."""
        return len(text) <= MAX_TEXT and self._compiled.search(_encodable(text)) is not None

    def fullmatch(self, text: str) -> bool:
        """Whether the whole of `text` matches."""
        return len(text) <= MAX_TEXT and self._compiled.fullmatch(_encodable(text)) is not None


def _encodable(text: str) -> str:
    """`text`, with what UTF-8 cannot carry (lone surrogates) replaced: RE2 matches UTF-8."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")
    return text


_BACKREFERENCE = re.compile(r"\\[1-9]|\(\?P=")
_LOOKAROUND = re.compile(r"\(\?<?[=!]")


def _hint(pattern: str, problem: str) -> str:
    if "\\Z" in problem:
        return " (RE2 spells the end of the text \\z)"
    if _BACKREFERENCE.search(pattern):
        return " (backreferences cannot be matched in linear time)"
    if _LOOKAROUND.search(pattern):
        return " (look-ahead / look-behind cannot be matched in linear time)"
    return ""


@functools.lru_cache(maxsize=1_024)
def _compile(pattern: str, ignore_case: bool) -> LinearRegex | PatternError:
    options = re2.Options()
    options.log_errors = False
    options.max_mem = MAX_MEMORY
    options.case_sensitive = not ignore_case
    try:
        compiled = re2.compile(pattern, options)
    except re2.error as exc:
        detail = exc.args[0] if exc.args else exc
        problem = detail.decode("utf-8", "replace") if isinstance(detail, bytes) else str(detail)
        return PatternError(f"not a linear-time (RE2) regex: {problem}{_hint(pattern, problem)}")
    except (TypeError, ValueError, UnicodeError) as exc:
        return PatternError(f"not a valid regex: {exc}")
    size = max(compiled.programsize, compiled.reverseprogramsize)
    if size > MAX_PROGRAM:
        return PatternError(
            f"too complex: it compiles to {size:,} RE2 instructions (at most {MAX_PROGRAM:,}); "
            "shorten repetition counts like {1000} or large alternations"
        )
    return LinearRegex(pattern, ignore_case, compiled)


def compile_linear(pattern: str, *, ignore_case: bool = False) -> LinearRegex:
    """The compiled pattern (cached); raises `PatternError`."""
    result = _compile(pattern, ignore_case)
    if isinstance(result, PatternError):
        raise result
    return result


def pattern_problem(pattern: str, *, ignore_case: bool = False) -> str | None:
    """Why `pattern` is refused, or None when it is fine."""
    result = _compile(pattern, ignore_case)
    return str(result) if isinstance(result, PatternError) else None


@functools.lru_cache(maxsize=256)
def _warn_once(pattern: str, problem: str) -> None:
    log.warning("regex %r of a deployed flow never matches: %s", pattern[:200], problem)


def matches(pattern: str, text: str | None, *, ignore_case: bool = False, whole: bool = False) -> bool:
    """Search (or, with `whole`, full-match) `text`; a pattern deployed before it was refused never matches."""
    if text is None:
        return False
    try:
        regex = compile_linear(pattern, ignore_case=ignore_case)
    except PatternError as exc:
        _warn_once(pattern, str(exc))
        return False
    return regex.fullmatch(text) if whole else regex.search(text)
