"""Flow regexes (regex triggers, question `validate: {regex}`) run in linear time (RE2); patterns that RE2 cannot
compile, or whose program is too large, are refused when the flow is validated, with node / field / line."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime

import pytest

from waflow.canonical import ContactRef, InboundMessage
from waflow.engine.flows.regex import MAX_TEXT, matches, pattern_problem
from waflow.engine.flows.rules import RegexRule
from waflow.engine.flows.triggers import RegexTrigger
from waflow.engine.runtime.answers import Rejected, check_answer

from ..helpers import find, problems

EVIL = "^(a+)+$"
TEXT = "a" * 26 + "!"  # 27 characters: seconds of backtracking for Python's `re`


def _msg(text: str) -> InboundMessage:
    return InboundMessage(
        phone_number_id="1", message_id="wamid.r", timestamp=datetime.now(UTC), type="text",
        contact=ContactRef(wa_id="34600000001"), text=text,
    )  # fmt: skip


def test_catastrophic_pattern_is_linear_in_a_trigger_and_a_question() -> None:
    started = time.perf_counter()
    assert not RegexTrigger(regex=EVIL).matches(TEXT)
    with pytest.raises(Rejected, match="no match"):
        check_answer(RegexRule(regex=EVIL), _msg(TEXT), date.today())
    assert RegexTrigger(regex=EVIL).matches("a" * 27)
    assert check_answer(RegexRule(regex=EVIL), _msg("a" * 27), date.today()) == "a" * 27
    assert time.perf_counter() - started < 0.2


def test_semantics_kept() -> None:
    trigger = RegexTrigger(regex=r"^(track|status)\s+\d{6}$")
    assert trigger.matches("TRACK 123456") and trigger.matches("status  000111")  # case-insensitive search
    assert not trigger.matches("track 12345")
    rule = RegexRule(regex=r"\d{6}")
    assert check_answer(rule, _msg(" 123456 "), date.today()) == "123456"  # the whole (trimmed) answer
    with pytest.raises(Rejected):
        check_answer(rule, _msg("1234567"), date.today())
    assert not matches("a", "a" * (MAX_TEXT + 1))  # longer than any WhatsApp text: never matches


@pytest.mark.parametrize(
    ("pattern", "says"),
    [
        (r"(a)\1", "backreferences"),
        (r"^(?=.*\d)\w+$", "look-ahead"),
        (r"end\Z", "\\z"),
        (r"(a|b|.){1000}x", "too complex"),
        (r"[", "missing ]"),
    ],
)
def test_refused_patterns_say_why(pattern: str, says: str) -> None:
    problem = pattern_problem(pattern)
    assert problem is not None and says in problem, problem


def test_deploy_refuses_them_with_node_field_and_line() -> None:
    text = (
        "id: t\n"
        "start: ask\n"
        "triggers:\n"
        "  - regex: '(a|b|.){1000}x'\n"
        "nodes:\n"
        "  ask:\n"
        "    type: question\n"
        "    text: Your code?\n"
        "    validate: {regex: '(\\d)\\1'}\n"
        "    save_as: code\n"
        "    next: fin\n"
        "  fin: {type: end}\n"
    )
    found = problems(text)
    rule = find(found, "bad-regex", "ask", "validate.regex")
    assert rule.is_error and rule.line == 9 and "backreferences" in rule.message
    trigger = find(found, "bad-regex", None, "triggers[0].regex")
    assert trigger.is_error and trigger.line == 4 and "too complex" in trigger.message
    assert all(p.code != "bad-regex" for p in problems(text.replace("(\\d)\\1", "\\d{6}").replace(
        "(a|b|.){1000}x", "^order \\d+")))  # fmt: skip


def test_a_pattern_deployed_before_it_was_refused_never_matches(caplog: pytest.LogCaptureFixture) -> None:
    assert not RegexTrigger(regex=r"(x)\1").matches("xx")
    assert "never matches" in caplog.text
    with pytest.raises(Rejected, match="bad pattern"):
        check_answer(RegexRule(regex=r"(x)\1"), _msg("xx"), date.today())
