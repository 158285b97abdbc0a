"""The 24 h customer-service window: free-form messages only reach users who wrote in the last 24 h.

Outside the window a non-template message is not sent: it is replaced by the fallback template the
caller named (`enqueue(..., fallback_template={...})`), or it fails with class `outside_window` and
code 131047 — the same code, class and text a `failed` status webhook with 131047 leaves on the row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from waflow.canonical import OutboundMessage
from waflow.cloudapi.errors import ErrorClass
from waflow.outbox.retry import describe
from waflow.store.contacts import window_open_at

OUTSIDE_WINDOW_CODE = 131047


@dataclass(frozen=True, slots=True)
class WindowVerdict:
    message: OutboundMessage | None  # what to send (the original or the fallback); None = do not send
    fallback_used: bool = False
    code: int | None = None
    error_class: str | None = None
    text: str | None = None


def needs_window(message: OutboundMessage) -> bool:
    """Templates may open a conversation; everything else needs an open window."""
    return message.type != "template"


def fallback_message(original: OutboundMessage, fallback: dict[str, Any]) -> OutboundMessage:
    """The fallback template, addressed like the original. `fallback` is a Cloud API `template` object
    (`{"name", "language": {"code"}, "components"}`), or `{"type": "template", "content": {...}}`."""
    content = fallback.get("content", fallback) if fallback.get("type") == "template" else fallback
    return OutboundMessage(to=original.to, recipient=original.recipient, type="template", content=dict(content))


def check_window(
    message: OutboundMessage,
    last_inbound_at: datetime | None,
    now: datetime,
    fallback: dict[str, Any] | None,
    *,
    fallback_used: bool = False,
) -> WindowVerdict:
    if fallback_used and fallback is not None:
        return WindowVerdict(fallback_message(message, fallback), fallback_used=True)
    if not needs_window(message) or window_open_at(last_inbound_at, now):
        return WindowVerdict(message)
    if fallback is not None:
        return WindowVerdict(fallback_message(message, fallback), fallback_used=True)
    text = describe(OUTSIDE_WINDOW_CODE)  # exactly what a failed webhook with 131047 leaves on the row
    return WindowVerdict(None, code=OUTSIDE_WINDOW_CODE, error_class=ErrorClass.OUTSIDE_WINDOW.value, text=text)
