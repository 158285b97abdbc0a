"""Typed request and response models of `POST /{phone-number-id}/messages`.

The request models mirror the Cloud API's JSON one to one (field names and nesting), so
`model.wire()` is exactly what goes on the wire and validation errors can name wire paths.
Pydantic checks types here; the platform's limits (lengths, counts, ranges) are checked once,
on the wire dict, by `waflow.cloudapi.validation` — the same check for typed models and for
the outbox's plain `OutboundMessage` dicts.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class WireModel(BaseModel):
    """A Cloud API JSON object. Unknown fields are refused: a typo must not be sent silently."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    def wire(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True, by_alias=True)


class OpenWireModel(WireModel):
    """A Cloud API object whose newer fields waflow passes through unmodelled."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)


class Content(WireModel):
    """The per-type object of a message (`text`, `image`, ...); `TYPE` is its `type` value."""

    TYPE: ClassVar[str]


# -- text, media, location, contacts, reaction ------------------------------------------------


class Text(Content):
    TYPE: ClassVar[str] = "text"
    body: str
    preview_url: bool | None = None


class MediaRef(WireModel):
    """A media object by uploaded `id` or public HTTPS `link` (exactly one)."""

    id: str | None = None
    link: str | None = None


class Image(Content, MediaRef):
    TYPE: ClassVar[str] = "image"
    caption: str | None = None


class Video(Content, MediaRef):
    TYPE: ClassVar[str] = "video"
    caption: str | None = None


class Audio(Content, MediaRef):
    TYPE: ClassVar[str] = "audio"
    voice: bool | None = None  # true = voice note (OGG/OPUS)


class Document(Content, MediaRef):
    TYPE: ClassVar[str] = "document"
    caption: str | None = None
    filename: str | None = None


class Sticker(Content, MediaRef):
    TYPE: ClassVar[str] = "sticker"


class Location(Content):
    TYPE: ClassVar[str] = "location"
    latitude: float
    longitude: float
    name: str | None = None
    address: str | None = None


class ContactName(WireModel):
    formatted_name: str
    first_name: str | None = None
    last_name: str | None = None
    middle_name: str | None = None
    suffix: str | None = None
    prefix: str | None = None


class ContactPhone(WireModel):
    phone: str | None = None
    type: str | None = None  # CELL, MAIN, IPHONE, HOME, WORK
    wa_id: str | None = None


class ContactEmail(WireModel):
    email: str | None = None
    type: str | None = None


class ContactAddress(WireModel):
    street: str | None = None
    city: str | None = None
    state: str | None = None
    zip: str | None = None
    country: str | None = None
    country_code: str | None = None
    type: str | None = None


class ContactOrg(WireModel):
    company: str | None = None
    department: str | None = None
    title: str | None = None


class ContactUrl(WireModel):
    url: str | None = None
    type: str | None = None


class Contact(WireModel):
    name: ContactName
    phones: list[ContactPhone] | None = None
    emails: list[ContactEmail] | None = None
    addresses: list[ContactAddress] | None = None
    org: ContactOrg | None = None
    urls: list[ContactUrl] | None = None
    birthday: str | None = None  # YYYY-MM-DD


class Contacts(Content):
    """The `contacts` type, whose wire value is a list: `wire()` returns `{"contacts": [...]}`."""

    TYPE: ClassVar[str] = "contacts"
    contacts: list[Contact]


class Reaction(Content):
    TYPE: ClassVar[str] = "reaction"
    message_id: str
    emoji: str  # "" removes the reaction


# -- interactive ------------------------------------------------------------------------------


class TextObject(WireModel):
    text: str


class InteractiveHeader(WireModel):
    type: Literal["text", "image", "video", "document"]
    text: str | None = None
    image: MediaRef | None = None
    video: MediaRef | None = None
    document: MediaRef | None = None


class ButtonReply(WireModel):
    id: str
    title: str


class ReplyButton(WireModel):
    type: Literal["reply"] = "reply"
    reply: ButtonReply


class ListRow(WireModel):
    id: str
    title: str
    description: str | None = None


class ListSection(OpenWireModel):
    title: str | None = None
    rows: list[ListRow] | None = None


class CtaUrlParameters(WireModel):
    display_text: str
    url: str


class InteractiveAction(OpenWireModel):
    """Union of the action shapes: `buttons` (reply buttons), `button`+`sections` (list),
    `name`+`parameters` (cta_url, send_location, flow, ...). Product actions pass through."""

    buttons: list[ReplyButton] | None = None
    button: str | None = None
    sections: list[ListSection] | None = None
    name: str | None = None
    parameters: CtaUrlParameters | dict[str, Any] | None = None


class Interactive(Content):
    TYPE: ClassVar[str] = "interactive"
    type: str  # button | list | cta_url | location_request_message | flow | product | ...
    header: InteractiveHeader | None = None
    body: TextObject | None = None
    footer: TextObject | None = None
    action: InteractiveAction

    # The builders validate one nested dict so that a bad argument is reported at its full wire
    # path (`action.buttons[0].reply.title`), not relative to an inner model.

    @classmethod
    def reply_buttons(
        cls,
        body: str,
        buttons: list[tuple[str, str]] | dict[str, str],
        *,
        header: str | InteractiveHeader | None = None,
        footer: str | None = None,
    ) -> Interactive:
        """Reply buttons from `(id, title)` pairs (or an `{id: title}` dict)."""
        pairs = list(buttons.items()) if isinstance(buttons, dict) else list(buttons)
        action = {"buttons": [{"type": "reply", "reply": {"id": i, "title": t}} for i, t in pairs]}
        return cls._build("button", body, action, header, footer)

    @classmethod
    def list_message(
        cls,
        body: str,
        button: str,
        sections: list[ListSection],
        *,
        header: str | None = None,
        footer: str | None = None,
    ) -> Interactive:
        return cls._build("list", body, {"button": button, "sections": sections}, header, footer)

    @classmethod
    def cta_url(
        cls,
        body: str,
        display_text: str,
        url: str,
        *,
        header: str | InteractiveHeader | None = None,
        footer: str | None = None,
    ) -> Interactive:
        action = {"name": "cta_url", "parameters": {"display_text": display_text, "url": url}}
        return cls._build("cta_url", body, action, header, footer)

    @classmethod
    def location_request(cls, body: str) -> Interactive:
        return cls._build("location_request_message", body, {"name": "send_location"}, None, None)

    @classmethod
    def _build(
        cls, type_: str, body: str, action: dict[str, Any], header: str | InteractiveHeader | None, footer: str | None
    ) -> Interactive:
        data: dict[str, Any] = {"type": type_, "body": {"text": body}, "action": action}
        if header is not None:
            data["header"] = {"type": "text", "text": header} if isinstance(header, str) else header
        if footer is not None:
            data["footer"] = {"text": footer}
        return cls.model_validate(data)


# -- template ---------------------------------------------------------------------------------


class TemplateLanguage(WireModel):
    code: str
    policy: Literal["deterministic"] | None = None


class Currency(WireModel):
    fallback_value: str
    code: str  # ISO 4217
    amount_1000: int


class DateTime(WireModel):
    fallback_value: str


class DocumentRef(MediaRef):
    filename: str | None = None


class TemplateParameter(OpenWireModel):
    """One parameter; `type` picks which of the other fields carries the value."""

    type: Literal[
        "text", "currency", "date_time", "image", "video", "document", "location", "payload", "coupon_code", "action"
    ]
    parameter_name: str | None = None  # named-format templates only
    text: str | None = None
    currency: Currency | None = None
    date_time: DateTime | None = None
    image: MediaRef | None = None
    video: MediaRef | None = None
    document: DocumentRef | None = None
    location: Location | None = None
    payload: str | None = None
    coupon_code: str | None = None
    action: dict[str, Any] | None = None

    @classmethod
    def of_text(cls, text: str, name: str | None = None) -> TemplateParameter:
        return cls(type="text", text=text, parameter_name=name)


class TemplateComponent(OpenWireModel):
    type: Literal["header", "body", "button", "carousel", "limited_time_offer"]
    sub_type: Literal["quick_reply", "url", "copy_code", "flow", "catalog", "mpm", "voice_call"] | None = None
    index: int | str | None = None  # button position, 0-based (docs send a string, pywa an int)
    parameters: list[TemplateParameter] = Field(default_factory=list)


class Template(Content):
    TYPE: ClassVar[str] = "template"
    name: str
    language: TemplateLanguage
    components: list[TemplateComponent] | None = None

    @classmethod
    def build(
        cls,
        name: str,
        language: str,
        *,
        body: list[str] | dict[str, str] | list[TemplateParameter] | None = None,
        header: list[TemplateParameter] | None = None,
        buttons: list[TemplateComponent] | None = None,
    ) -> Template:
        """A template from plain values: `body=["Ana", "42"]` (positional) or `{"name": "Ana"}` (named)."""
        components: list[TemplateComponent] = []
        if header:
            components.append(TemplateComponent(type="header", parameters=header))
        if body:
            if isinstance(body, dict):
                params = [TemplateParameter.of_text(v, k) for k, v in body.items()]
            else:
                params = [p if isinstance(p, TemplateParameter) else TemplateParameter.of_text(p) for p in body]
            components.append(TemplateComponent(type="body", parameters=params))
        components.extend(buttons or [])
        return cls(name=name, language=TemplateLanguage(code=language), components=components or None)

    @staticmethod
    def quick_reply(index: int, payload: str) -> TemplateComponent:
        return TemplateComponent(
            type="button", sub_type="quick_reply", index=str(index),
            parameters=[TemplateParameter(type="payload", payload=payload)],
        )

    @staticmethod
    def url_button(index: int, suffix: str) -> TemplateComponent:
        return TemplateComponent(
            type="button", sub_type="url", index=str(index), parameters=[TemplateParameter.of_text(suffix)]
        )

    @staticmethod
    def copy_code(index: int, code: str) -> TemplateComponent:
        return TemplateComponent(
            type="button", sub_type="copy_code", index=str(index),
            parameters=[TemplateParameter(type="coupon_code", coupon_code=code)],
        )


# -- envelope ---------------------------------------------------------------------------------

MessageContent = (
    Text | Image | Video | Audio | Document | Sticker | Location | Contacts | Reaction | Interactive | Template
)


class SendMessage(WireModel):
    """One outbound message: a recipient (`to` phone/wa_id or `recipient` BSUID) and its content."""

    to: str | None = None
    recipient: str | None = None
    content: MessageContent
    reply_to: str | None = None  # context.message_id
    biz_opaque_callback_data: str | None = None
    recipient_type: Literal["individual", "group"] = "individual"

    @model_validator(mode="after")
    def _one_recipient(self) -> SendMessage:
        if (self.to is None) == (self.recipient is None):
            raise ValueError("give exactly one of `to` (phone number) or `recipient` (business-scoped user id)")
        return self

    def wire(self) -> dict[str, Any]:
        return build_payload(
            self.content.TYPE,
            content_wire(self.content),
            to=self.to,
            recipient=self.recipient,
            reply_to=self.reply_to,
            biz_opaque_callback_data=self.biz_opaque_callback_data,
            recipient_type=self.recipient_type,
        )


def content_wire(content: Content) -> Any:
    """The value under the `<type>` key: an object, or a list for `contacts`."""
    if isinstance(content, Contacts):
        return [c.wire() for c in content.contacts]
    return content.wire()


def build_payload(
    type_: str,
    content: Any,
    *,
    to: str | None,
    recipient: str | None = None,
    reply_to: str | None = None,
    biz_opaque_callback_data: str | None = None,
    recipient_type: str = "individual",
) -> dict[str, Any]:
    """The request body of a send, from a type and its already-wire-shaped content."""
    payload: dict[str, Any] = {"messaging_product": "whatsapp", "recipient_type": recipient_type}
    if to is not None:
        payload["to"] = to
    if recipient is not None:
        payload["recipient"] = recipient
    if reply_to is not None:
        payload["context"] = {"message_id": reply_to}
    if biz_opaque_callback_data is not None:
        payload["biz_opaque_callback_data"] = biz_opaque_callback_data
    payload["type"] = type_
    payload[type_] = content
    return payload


# -- responses --------------------------------------------------------------------------------


class ResponseModel(BaseModel):
    """A Graph answer; unknown fields are kept (Meta adds fields without notice)."""

    model_config = ConfigDict(extra="allow")


class SendContact(ResponseModel):
    input: str | None = None
    wa_id: str | None = None
    user_id: str | None = None


class SentMessage(ResponseModel):
    id: str
    message_status: str | None = None  # "accepted" | "held_for_quality_assessment" (paced templates)
    group_id: str | None = None


class SendResult(ResponseModel):
    messaging_product: str = "whatsapp"
    contacts: list[SendContact] = Field(default_factory=list)
    messages: list[SentMessage]

    @property
    def message_id(self) -> str:
        """The wamid of the (single) message sent."""
        return self.messages[0].id

    @property
    def wa_id(self) -> str | None:
        return self.contacts[0].wa_id if self.contacts else None

    @property
    def message_status(self) -> str | None:
        return self.messages[0].message_status

    @property
    def held_for_quality_assessment(self) -> bool:
        return self.message_status == "held_for_quality_assessment"


class SuccessResult(ResponseModel):
    success: bool
