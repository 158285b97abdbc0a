"""Typed models of the Cloud API webhook payloads (reference §5).

Every model allows extra fields (`extra="allow"`): Meta adds fields and types over time, and
whatever it sends is kept, never dropped. Message objects name their type's object after the
type (`text`, `image`, `interactive`, ...); a type this module does not know still validates as
an `InboundMessageModel` and keeps its object as an extra field.

These models document the wire and serve callers that want typed access (the emulator builds
payloads with them). The hot receive path (`waflow.providers.cloud.parse_webhook`) reads the
same shapes with plain dict access for speed and produces canonical events.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


# -- shared pieces -----------------------------------------------------------------------


class ErrorData(_Open):
    details: str | None = None


class WebhookError(_Open):
    """An `errors[]` item (message, status or value level).

    Newer payloads carry the details under `error_data.details`, older ones at the item's top
    level (`details`); both are kept, and `details_text` reads them in that order.
    """

    code: int
    title: str | None = None
    message: str | None = None
    error_data: ErrorData | None = None
    details: str | None = None
    href: str | None = None

    @property
    def details_text(self) -> str:
        nested = self.error_data.details if self.error_data is not None else None
        return nested or self.details or ""


class Metadata(_Open):
    display_phone_number: str | None = None
    phone_number_id: str


class Profile(_Open):
    name: str | None = None
    username: str | None = None


class Contact(_Open):
    """`value.contacts[]`: phone-based `wa_id`, the 2026 business-scoped `user_id`, or both."""

    profile: Profile | None = None
    wa_id: str | None = None
    user_id: str | None = None
    parent_user_id: str | None = None
    identity_key_hash: str | None = None


# -- message type objects --------------------------------------------------------------------


class Text(_Open):
    body: str


class Media(_Open):
    """image / video / audio / document / sticker."""

    id: str | None = None
    mime_type: str | None = None
    sha256: str | None = None
    caption: str | None = None
    filename: str | None = None
    url: str | None = None
    voice: bool | None = None
    animated: bool | None = None


class Location(_Open):
    latitude: float
    longitude: float
    name: str | None = None
    address: str | None = None
    url: str | None = None


class SharedContactName(_Open):
    formatted_name: str | None = None
    first_name: str | None = None
    last_name: str | None = None


class SharedContactPhone(_Open):
    phone: str | None = None
    wa_id: str | None = None
    type: str | None = None


class SharedContact(_Open):
    name: SharedContactName | None = None
    phones: list[SharedContactPhone] = Field(default_factory=list)


class ButtonReply(_Open):
    id: str
    title: str | None = None


class ListReply(_Open):
    id: str
    title: str | None = None
    description: str | None = None


class NfmReply(_Open):
    response_json: str | None = None
    body: str | None = None
    name: str | None = None


class Interactive(_Open):
    type: str
    button_reply: ButtonReply | None = None
    list_reply: ListReply | None = None
    nfm_reply: NfmReply | None = None


class TemplateButton(_Open):
    """`type: "button"`: a tap on a template quick-reply button."""

    payload: str | None = None
    text: str | None = None


class Reaction(_Open):
    message_id: str | None = None
    emoji: str | None = None  # "" or missing: the reaction was removed


class ProductItem(_Open):
    product_retailer_id: str | None = None
    quantity: int | str | None = None
    item_price: float | str | None = None
    currency: str | None = None


class Order(_Open):
    catalog_id: str | None = None
    text: str | None = None
    product_items: list[ProductItem] = Field(default_factory=list)


class System(_Open):
    body: str | None = None
    wa_id: str | None = None
    type: str | None = None


class Unsupported(_Open):
    type: str | None = None


class ReferredProduct(_Open):
    catalog_id: str | None = None
    product_retailer_id: str | None = None


class Context(_Open):
    from_: str | None = Field(default=None, alias="from")
    id: str | None = None
    forwarded: bool | None = None
    frequently_forwarded: bool | None = None
    referred_product: ReferredProduct | None = None


class WelcomeMessage(_Open):
    text: str | None = None


class Referral(_Open):
    source_url: str | None = None
    source_id: str | None = None
    source_type: str | None = None
    body: str | None = None
    headline: str | None = None
    media_type: str | None = None
    image_url: str | None = None
    video_url: str | None = None
    thumbnail_url: str | None = None
    ctwa_clid: str | None = None
    welcome_message: WelcomeMessage | None = None


class InboundMessageModel(_Open):
    """`value.messages[]`: common fields plus the object named after `type`."""

    from_: str | None = Field(default=None, alias="from")
    from_user_id: str | None = None
    id: str
    timestamp: str
    type: str
    context: Context | None = None
    referral: Referral | None = None
    errors: list[WebhookError] | None = None
    identity: dict[str, Any] | None = None
    text: Text | None = None
    image: Media | None = None
    video: Media | None = None
    audio: Media | None = None
    document: Media | None = None
    sticker: Media | None = None
    location: Location | None = None
    contacts: list[SharedContact] | None = None
    interactive: Interactive | None = None
    button: TemplateButton | None = None
    reaction: Reaction | None = None
    order: Order | None = None
    system: System | None = None
    unsupported: Unsupported | None = None
    request_welcome: dict[str, Any] | None = None


# -- statuses ------------------------------------------------------------------------------


class ConversationOrigin(_Open):
    type: str | None = None


class Conversation(_Open):
    id: str | None = None
    expiration_timestamp: str | None = None
    origin: ConversationOrigin | None = None


class Pricing(_Open):
    billable: bool | None = None
    pricing_model: str | None = None
    type: str | None = None
    category: str | None = None


class StatusModel(_Open):
    """`value.statuses[]`."""

    id: str
    status: str
    timestamp: str
    recipient_id: str | None = None
    recipient_user_id: str | None = None
    recipient_type: str | None = None
    recipient_participant_id: str | None = None
    biz_opaque_callback_data: str | None = None
    conversation: Conversation | None = None
    pricing: Pricing | None = None
    errors: list[WebhookError] | None = None


# -- values by field -----------------------------------------------------------------------


class MessagesValue(_Open):
    """The `value` of a `messages` change."""

    messaging_product: Literal["whatsapp"] | str = "whatsapp"
    metadata: Metadata
    contacts: list[Contact] | None = None
    messages: list[InboundMessageModel] | None = None
    statuses: list[StatusModel] | None = None
    errors: list[WebhookError] | None = None


class RejectionInfo(_Open):
    reason: str | None = None
    recommendation: str | None = None


class TemplateStatusValue(_Open):
    """The `value` of a `message_template_status_update` change."""

    event: str
    message_template_id: int | str
    message_template_name: str
    message_template_language: str
    reason: str | None = None
    message_template_category: str | None = None
    rejection_info: RejectionInfo | None = None
    disable_info: dict[str, Any] | None = None
    other_info: dict[str, Any] | None = None


class Change(_Open):
    field: str
    value: dict[str, Any]

    def messages_value(self) -> MessagesValue:
        return MessagesValue.model_validate(self.value)

    def template_status_value(self) -> TemplateStatusValue:
        return TemplateStatusValue.model_validate(self.value)


class Entry(_Open):
    id: str
    time: int | None = None
    changes: list[Change]


class WebhookPayload(_Open):
    """The whole POST body: `{"object": "whatsapp_business_account", "entry": [...]}`."""

    object: str
    entry: list[Entry]


__all__ = [
    "Change",
    "Contact",
    "Context",
    "Conversation",
    "Entry",
    "ErrorData",
    "InboundMessageModel",
    "Interactive",
    "Location",
    "Media",
    "MessagesValue",
    "Metadata",
    "Order",
    "Pricing",
    "Reaction",
    "Referral",
    "SharedContact",
    "StatusModel",
    "System",
    "TemplateButton",
    "TemplateStatusValue",
    "Text",
    "WebhookError",
    "WebhookPayload",
]
