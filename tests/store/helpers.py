"""Builders for store tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from waflow.canonical import ContactRef, DeliveryStatus, ErrorDetail, InboundMessage, OutboundMessage, StatusUpdate

PNID = "106540352242922"
T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def message(
    wamid: str, wa_id: str = "34600111222", seconds: float = 0, text: str = "hola ¿qué tal? 😮"
) -> InboundMessage:
    return InboundMessage(
        phone_number_id=PNID,
        message_id=wamid,
        contact=ContactRef(wa_id=wa_id, profile_name="Ana"),
        timestamp=at(seconds),
        type="text",
        text=text,
        content={"body": text},
    )


def status(
    wamid: str,
    value: DeliveryStatus | str,
    seconds: float = 0,
    *,
    callback: str | None = None,
    error: int | None = None,
    phone_number_id: str = PNID,
) -> StatusUpdate:
    errors = [ErrorDetail(code=error, title="Re-engagement message", details="more than 24 hours")] if error else []
    return StatusUpdate(
        phone_number_id=phone_number_id,
        message_id=wamid,
        status=DeliveryStatus(value),
        timestamp=at(seconds),
        recipient_id="34600111222",
        callback_data=callback,
        errors=errors,
    )


def text_out(body: str = "hi", to: str = "34600111222") -> OutboundMessage:
    return OutboundMessage(to=to, type="text", content={"body": body})
