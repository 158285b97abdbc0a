"""Request and response models of the admin API (every input validated; every field named in errors)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

WaId = Annotated[str, StringConstraints(pattern=r"^\+?\d{6,20}$")]
NumberId = Annotated[str, StringConstraints(pattern=r"^\d{1,32}$")]
Name = Annotated[str, StringConstraints(min_length=1, max_length=255, pattern=r"^[^\x00]*$")]
Id = Annotated[int, Field(ge=1, le=2**62)]
MessageType = Literal[
    "text", "image", "video", "audio", "document", "sticker", "location", "contacts", "interactive", "template",
    "reaction",
]


# No request of the API needs more (a Cloud API message object is under 10 levels); deeper input is refused
# before anything walks it recursively (the store's JSON encoder stops at 255 levels with a 500).
MAX_JSON_DEPTH = 32


def json_depth_over(value: Any, limit: int) -> bool:
    """Whether `value` (decoded JSON) nests deeper than `limit` levels; iterative, so any depth is safe."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth >= limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


class Input(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _bounded_depth(cls, data: Any) -> Any:
        if json_depth_over(data, MAX_JSON_DEPTH):
            raise ValueError(f"nested deeper than {MAX_JSON_DEPTH} levels")
        return data


class Output(BaseModel):
    model_config = ConfigDict(from_attributes=True)


# -- messages ------------------------------------------------------------------------------------------


class FallbackTemplate(Input):
    name: Name
    language: Annotated[str, StringConstraints(pattern=r"^[a-z]{2,3}(_[A-Za-z]{2,4})?$")]
    body: list[Annotated[str, StringConstraints(max_length=1024)]] = Field(default_factory=list, max_length=20)


class SendMessage(Input):
    """One message, Cloud-API shaped: `{"to": "34600111222", "type": "text", "content": {"body": "hi"}}`."""

    to: WaId | None = Field(None, description="the user's phone number / wa_id")
    recipient: Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._\-]+$")] | None = (
        Field(None, description="business-scoped user id, instead of `to`")
    )
    phone_number_id: NumberId | None = Field(None, description="sending number (default: the first configured)")
    type: MessageType
    content: dict[str, Any] = Field(description="the type's object as in the Cloud API (`text` → {body: ...})")
    reply_to: Annotated[str, StringConstraints(min_length=1, max_length=255)] | None = None
    business_initiated: bool | None = Field(
        None, description="counted against the messaging tier (default: when the user's 24 h window is closed)"
    )
    fallback_template: FallbackTemplate | None = Field(None, description="sent instead when the window is closed")

    @model_validator(mode="after")
    def _recipient(self) -> SendMessage:
        if (self.to is None) == (self.recipient is None):
            raise ValueError("give exactly one of `to` and `recipient`")
        return self


class Enqueued(Output):
    id: int = Field(description="the outbox id")
    status: str = "queued"


class ErrorInfo(Output):
    code: int | None = None
    error_class: str | None = None
    text: str | None = None


class AttemptOut(Output):
    attempt: int
    started_at: datetime
    finished_at: datetime | None
    outcome: str
    http_status: int | None
    error_code: int | None
    detail: str | None


class StatusEventOut(Output):
    status: str
    occurred_at: datetime
    recorded_at: datetime
    error_code: int | None = None
    error_title: str | None = None


class MessageOut(Output):
    id: int
    phone_number_id: str
    contact_key: str
    to: str | None
    type: str
    content: dict[str, Any]
    status: str
    wamid: str | None
    business_initiated: bool
    session_id: int | None
    campaign_id: int | None
    attempts: int
    error: ErrorInfo | None
    created_at: datetime
    accepted_at: datetime | None
    sent_at: datetime | None
    delivered_at: datetime | None
    read_at: datetime | None
    failed_at: datetime | None


class MessageDetail(MessageOut):
    send_attempts: list[AttemptOut]
    status_history: list[StatusEventOut]


class MessageList(Output):
    items: list[MessageOut]
    next_before: int | None = Field(None, description="pass as `before` for the next (older) page")


# -- contacts, sessions, timelines -----------------------------------------------------------------


class ContactOut(Output):
    id: int
    phone_number_id: str
    contact_key: str
    wa_id: str | None
    user_id: str | None
    profile_name: str | None
    last_inbound_at: datetime | None
    window_open: bool
    window_closes_at: datetime | None
    opted_out: bool
    opted_out_at: datetime | None = Field(None, description="when the current opt-out was recorded")
    created_at: datetime


class ConsentChange(Input):
    by: Annotated[str, StringConstraints(min_length=1, max_length=80, pattern=r"\S")] | None = Field(
        None, description="who made the change (an operator's name); recorded with the API key's fingerprint"
    )
    note: Annotated[str, StringConstraints(max_length=500)] | None = Field(
        None, description="how the contact asked (e.g. 'by phone, ticket 4411')"
    )


class ConsentEventOut(Output):
    action: Literal["opt_out", "opt_in"]
    source: str = Field(description="keyword (the contact wrote a stop / start word) or api")
    actor: str | None = Field(None, description="'contact', or the API key's fingerprint and the operator")
    detail: str | None = Field(None, description="the word the contact wrote, or the operator's note")
    at: datetime


class ConsentOut(Output):
    contact_key: str
    opted_out: bool
    opted_out_at: datetime | None
    changed: bool | None = Field(None, description="whether this request changed it (absent on a read)")
    history: list[ConsentEventOut] = Field(description="changes, newest first")


class ContactList(Output):
    items: list[ContactOut]
    next_after: int | None = None


class TimelineItem(Output):
    direction: Literal["in", "out"]
    at: datetime
    type: str
    text: str | None = Field(None, description="what a person would read")
    id: str = Field(description="wamid (in) or outbox id (out)")
    status: str | None = Field(None, description="delivery status (out)")
    payload: str | None = Field(None, description="button / list id (in)")


class SessionOut(Output):
    id: int
    contact: ContactOut
    flow_id: str
    flow_version: str
    state: str
    current_node: str | None
    waiting_for: str | None
    vars: dict[str, Any]
    started_at: datetime
    updated_at: datetime
    ended_at: datetime | None
    end_reason: str | None


class SessionList(Output):
    items: list[SessionOut]
    next_before: int | None = None


class SessionDetail(SessionOut):
    timeline: list[TimelineItem]


class ContactDetail(ContactOut):
    session: SessionOut | None
    timeline: list[TimelineItem]


class EndSession(Input):
    reason: Annotated[str, StringConstraints(min_length=1, max_length=200)] = "ended by admin"


class Ended(Output):
    ended: bool


# -- flows ---------------------------------------------------------------------------------------------


class FlowProblemOut(Output):
    severity: str
    code: str
    message: str
    node: str | None
    field: str
    line: int | None


class FlowVersionOut(Output):
    flow_id: str
    version: int
    content_hash: str
    active: bool
    deployed_at: datetime
    name: str | None = None


class Deployed(Output):
    flow_id: str
    version: int
    content_hash: str
    created: bool = Field(description="false when this content was already deployed (same version)")
    warnings: list[FlowProblemOut] = Field(default_factory=list)


class FlowList(Output):
    items: list[FlowVersionOut]


class StartFlow(Input):
    to: WaId
    phone_number_id: NumberId | None = None
    vars: dict[str, Any] = Field(default_factory=dict)


class FlowStarted(Output):
    event_id: int
    flow_id: str
    version: int


# -- handoff -------------------------------------------------------------------------------------------


class AgentReply(Input):
    text: Annotated[str, StringConstraints(min_length=1, max_length=4096, pattern=r"\S")]


class HandBack(Input):
    node: Annotated[str, StringConstraints(min_length=1, max_length=128)] | None = Field(
        None, description="resume here (default: the handoff node's `then`)"
    )


class HandedBack(Output):
    event_id: int | None


class HandoffItem(Output):
    session: SessionOut
    timeline: list[TimelineItem]


class HandoffList(Output):
    items: list[HandoffItem]


# -- templates -----------------------------------------------------------------------------------------


class TemplateOut(Output):
    id: str
    name: str | None = None
    status: str | None = None
    category: str | None = None
    language: str | None = None
    components: list[dict[str, Any]] = Field(default_factory=list)
    rejected_reason: str | None = None


class TemplateList(Output):
    items: list[TemplateOut]
    after: str | None = None


class CreateTemplate(Input):
    phone_number_id: NumberId | None = None
    name: Annotated[str, StringConstraints(pattern=r"^[a-z0-9_]{1,512}$")]
    language: Annotated[str, StringConstraints(pattern=r"^[a-z]{2,3}(_[A-Za-z]{2,4})?$")]
    category: Literal["MARKETING", "UTILITY", "AUTHENTICATION"]
    components: list[dict[str, Any]] = Field(min_length=1, max_length=10)


class TemplateCreatedOut(Output):
    id: str
    status: str | None = None
    category: str | None = None


class TemplateDeleted(Output):
    deleted: bool


# -- campaigns -----------------------------------------------------------------------------------------


class CreateCampaign(Input):
    name: Name
    phone_number_id: NumberId | None = None
    template: Annotated[str, StringConstraints(pattern=r"^[a-z0-9_]{1,512}$")]
    language: Annotated[str, StringConstraints(pattern=r"^[a-z]{2,3}(_[A-Za-z]{2,4})?$")]
    params: list[Annotated[str, StringConstraints(max_length=1024)]] = Field(
        default_factory=list, max_length=20, description="body parameters; `{column}` takes the contact's value"
    )
    contacts: list[dict[str, Annotated[str, StringConstraints(max_length=1024)] | int | None]] = Field(
        min_length=1, max_length=100_000, description="rows with a `phone` (or wa_id/to/number) and any columns"
    )


class CampaignOut(Output):
    id: int
    name: str
    status: str
    total: int
    queued: int
    sent: int
    delivered: int
    read: int
    failed: int = Field(description="failed for another reason than an opt-out")
    skipped: int = Field(0, description="refused: the contact opted out (the consent rule)")
    finished: bool


class CampaignList(Output):
    items: list[CampaignOut]


# -- health --------------------------------------------------------------------------------------------


class Health(Output):
    status: Literal["ok"] = "ok"


class Readiness(Output):
    ready: bool
    checks: dict[str, str]
