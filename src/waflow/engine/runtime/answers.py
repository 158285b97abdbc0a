"""Checking a `question` node's answer against its rule: the accepted value, or None (ask again)."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from typing import Any

from waflow.canonical import InboundMessage
from waflow.engine.flows.regex import PatternError, compile_linear
from waflow.engine.flows.rules import (
    ChoiceRule,
    DateRule,
    EmailRule,
    LocationRule,
    MediaRule,
    NumberRule,
    PhoneRule,
    RegexRule,
    TextRule,
)

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PHONE_JUNK = re.compile(r"[\s().\-]")
_MEDIA_TYPES = ("image", "video", "audio", "document", "sticker")


class Rejected(Exception):
    """The answer does not satisfy the rule."""


def _text(msg: InboundMessage) -> str:
    if msg.type not in ("text", "interactive", "button") or msg.text is None:
        raise Rejected("not a text answer")
    return msg.text.strip()


def _number(text: str, rule: NumberRule) -> float | int:
    cleaned = text.replace(" ", "")
    if re.fullmatch(r"-?\d+,\d+", cleaned):
        cleaned = cleaned.replace(",", ".")
    try:
        value = float(cleaned)
    except ValueError:
        raise Rejected("not a number") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise Rejected("not a number")
    opts = rule.number
    if opts.integer and not value.is_integer():
        raise Rejected("not a whole number")
    if (opts.min is not None and value < opts.min) or (opts.max is not None and value > opts.max):
        raise Rejected("out of range")
    return int(value) if value.is_integer() else value


def _date(text: str, rule: DateRule, today: date) -> str:
    opts = rule.date
    for fmt in opts.formats:
        try:
            value = datetime.strptime(text, fmt).date()
        except ValueError:
            continue
        if opts.min_days is not None and value < today + timedelta(days=opts.min_days):
            raise Rejected("too early")
        if opts.max_days is not None and value > today + timedelta(days=opts.max_days):
            raise Rejected("too late")
        if opts.weekdays_only and value.weekday() >= 5:
            raise Rejected("not a weekday")
        return value.isoformat()
    raise Rejected("not a date")


def check_answer(rule: Any, msg: InboundMessage, today: date) -> Any:
    """The value to save for `msg` under `rule`; raises `Rejected`."""
    match rule:
        case MediaRule():
            if msg.type not in _MEDIA_TYPES or msg.type not in rule.media:
                raise Rejected("not an accepted media type")
            return {
                "type": msg.type,
                **{k: v for k, v in msg.content.items() if k in ("id", "mime_type", "sha256", "caption", "filename")},
            }
        case LocationRule():
            if msg.type != "location":
                raise Rejected("not a location")
            keys = ("latitude", "longitude", "name", "address")
            return {k: msg.content[k] for k in keys if k in msg.content}
        case TextRule():
            text = _text(msg)
            if not rule.text.min_length <= len(text) <= rule.text.max_length:
                raise Rejected("wrong length")
            return text
        case NumberRule():
            return _number(_text(msg), rule)
        case EmailRule():
            text = _text(msg)
            if not _EMAIL.match(text) or len(text) > 254:
                raise Rejected("not an email address")
            return text.lower()
        case PhoneRule():
            text = _PHONE_JUNK.sub("", _text(msg))
            digits = text.removeprefix("+").removeprefix("00")
            if not digits.isdigit() or not 7 <= len(digits) <= 15:
                raise Rejected("not a phone number")
            return "+" + digits if text.startswith(("+", "00")) else digits
        case DateRule():
            return _date(_text(msg), rule, today)
        case RegexRule():
            text = _text(msg)
            try:  # RE2: linear in the answer's length, whatever the pattern (see `flows.regex`)
                pattern = compile_linear(rule.regex)
            except PatternError:
                raise Rejected("bad pattern") from None
            if not pattern.fullmatch(text):
                raise Rejected("no match")
            return text
        case ChoiceRule():
            text = _text(msg).casefold()
            for choice in rule.choice:
                if choice.strip().casefold() == text:
                    return choice
            if msg.payload is not None:
                for choice in rule.choice:
                    if choice == msg.payload:
                        return choice
            raise Rejected("not one of the choices")
    raise Rejected(f"unknown rule {rule!r}")
