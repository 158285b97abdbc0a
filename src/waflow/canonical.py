"""Canonical types every part may import: an inbound event, an outbound message, a status.

Provider adapters translate their wire shapes into these and back; the store, engine and
outbox speak only these. Outbound content follows the Cloud API's per-type objects (the
richest vocabulary of the providers waflow supports): adapters for other providers map
from it and refuse what they cannot express.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class DeliveryStatus(enum.StrEnum):
    """Lifecycle of an outbound message; `rank` orders the monotonic part."""

    QUEUED = "queued"  # in the outbox, not yet handed to the provider
    ACCEPTED = "accepted"  # the provider answered 200 with a message id
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    PLAYED = "played"
    FAILED = "failed"

    @property
    def rank(self) -> int:
        return _STATUS_RANK[self]

    @property
    def is_final(self) -> bool:
        return self in (DeliveryStatus.READ, DeliveryStatus.PLAYED, DeliveryStatus.FAILED)


_STATUS_RANK: dict[DeliveryStatus, int] = {
    DeliveryStatus.QUEUED: 0,
    DeliveryStatus.ACCEPTED: 1,
    DeliveryStatus.SENT: 2,
    DeliveryStatus.DELIVERED: 3,
    DeliveryStatus.READ: 4,
    DeliveryStatus.PLAYED: 5,
    # failed is terminal: nothing after it applies, and it applies over anything but read/played.
    DeliveryStatus.FAILED: 6,
}


class EventKind(enum.StrEnum):
    MESSAGE = "message"  # a user wrote, tapped, reacted, ...
    STATUS = "status"  # a delivery status of one of our messages
    TEMPLATE_STATUS = "template_status"  # message_template_status_update
    ERROR = "error"  # value.errors[]: an app-level failure not tied to one message
    OTHER = "other"  # any other webhook field, kept whole


class ErrorDetail(BaseModel):
    """An error as a provider reported it (Cloud API `errors[]` item or its equivalent)."""

    model_config = ConfigDict(extra="allow")

    code: int
    title: str = ""
    message: str = ""
    details: str = ""


class ContactRef(BaseModel):
    """Who a user is: phone-based `wa_id`, the 2026 business-scoped `user_id`, or both."""

    wa_id: str | None = None
    user_id: str | None = None
    profile_name: str | None = None

    @property
    def key(self) -> str:
        """The stable key waflow files a contact under: wa_id when known, else the user id."""
        key = self.wa_id or self.user_id
        if not key:
            raise ValueError("a contact needs a wa_id or a user_id")
        return key

    @classmethod
    def from_address(cls, address: str) -> ContactRef:
        """What an operator names a contact by: digits (a leading + allowed) are a wa_id, else a user id."""
        return cls(wa_id=address.lstrip("+")) if address.lstrip("+").isdigit() else cls(user_id=address)


class InboundMessage(BaseModel):
    """One message from a user, whatever its type.

    `text` is what a person would read (a text body, a caption, a button title); `payload` is
    what a machine routes on (a reply button id, a list row id, a template quick-reply payload).
    `content` is the type's own object as received, so nothing the provider sent is lost.
    """

    provider: str = "cloud"
    phone_number_id: str
    message_id: str
    contact: ContactRef
    timestamp: datetime
    type: str
    text: str | None = None
    payload: str | None = None
    context_message_id: str | None = None
    referral: dict[str, Any] | None = None
    content: dict[str, Any] = Field(default_factory=dict)
    errors: list[ErrorDetail] = Field(default_factory=list)


class StatusUpdate(BaseModel):
    """A delivery status report for a message waflow sent."""

    provider: str = "cloud"
    phone_number_id: str
    message_id: str  # the provider's id (wamid)
    status: DeliveryStatus
    timestamp: datetime
    recipient_id: str | None = None
    callback_data: str | None = None  # biz_opaque_callback_data: waflow puts the outbox id here
    errors: list[ErrorDetail] = Field(default_factory=list)
    conversation: dict[str, Any] | None = None
    pricing: dict[str, Any] | None = None


class TemplateStatusUpdate(BaseModel):
    provider: str = "cloud"
    waba_id: str
    template_id: str
    name: str
    language: str
    event: str  # APPROVED, REJECTED, PAUSED, ...
    reason: str | None = None
    timestamp: datetime | None = None


class OutboundMessage(BaseModel):
    """A message waflow wants delivered to one user.

    `type` and `content` follow the Cloud API: `type="text", content={"body": "hi"}`,
    `type="interactive", content={"type": "button", ...}`, `type="template", content={"name": ...}`.
    """

    to: str | None = None  # wa_id / phone number
    recipient: str | None = None  # business-scoped user id (2026+)
    type: str
    content: dict[str, Any]
    reply_to: str | None = None  # context.message_id: quote this message
