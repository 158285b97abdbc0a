"""The node types of a flow, one pydantic model each, united on `type`.

Every string a person reads, and most strings sent anywhere, is a Jinja template rendered in the
sandbox (`expressions.py`) over `contact`, `vars`, `message`, `response`, `flow`. Transition fields
(`next`, `no_match`, `on_fail`, ...) name other nodes of the same flow.

`transitions()` lists a node's outgoing edges; `waits` says whether the node stops to wait for the
user, an agent or a timer (a cycle in the graph must pass through such a node).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, model_validator

from waflow.engine.flows.durations import Duration
from waflow.engine.flows.rules import AnswerRule, TextRule

ID_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,63}$"
VAR_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"

NodeRef = Annotated[str, Field(pattern=ID_PATTERN, description="id of a node of this flow")]
FlowRef = Annotated[str, Field(pattern=ID_PATTERN, description="id of another flow")]
VarName = Annotated[str, Field(pattern=VAR_PATTERN, description="a session variable (vars.<name>)")]
Text = Annotated[str, Field(max_length=16_000, description="text; may use {{ expressions }}")]


@dataclass(frozen=True, slots=True)
class Transition:
    """One edge: `path` is the field holding it inside the node, `kind` what triggers it."""

    path: tuple[str | int, ...]
    target: str
    kind: str  # next, button, row, reply, branch, else, no_match, timeout, fail, failed, error, then
    label: str = ""


class _Base(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Media(_Base):
    """A media object: exactly one of `link` (https URL, may be templated) or `id` (uploaded media id)."""

    link: Text | None = None
    id: str | None = None
    caption: Text | None = None
    filename: str | None = None
    voice: bool = False

    @model_validator(mode="after")
    def _one_source(self) -> Media:
        if (self.link is None) == (self.id is None):
            raise ValueError("media needs exactly one of 'link' or 'id'")
        return self


class MediaHeader(Media):
    type: Literal["image", "video", "document"]


class Location(_Base):
    latitude: float | Text
    longitude: float | Text
    name: Text | None = None
    address: Text | None = None


class _Node(_Base):
    description: str | None = Field(None, description="a note for people reading the flow")

    @property
    def waits(self) -> bool:
        return False

    def transitions(self) -> list[Transition]:
        return []


def _edge(out: list[Transition], path: tuple[str | int, ...], target: str | None, kind: str, label: str = "") -> None:
    if target is not None:
        out.append(Transition(path, target, kind, label))


class _Sending(_Node):
    on_failed: NodeRef | None = Field(None, description="where to go when the message fails to deliver")


class _Waiting(_Node):
    timeout: Duration | None = Field(None, description="how long to wait for the user")
    on_timeout: NodeRef | None = None


class MessageNode(_Sending):
    """Send one message (text, media, location or contacts), then go on to `next`."""

    type: Literal["message"]
    text: Text | None = None
    preview_url: bool = False
    image: Media | None = None
    video: Media | None = None
    audio: Media | None = None
    document: Media | None = None
    sticker: Media | None = None
    location: Location | None = None
    contacts: list[dict[str, Any]] | None = Field(None, min_length=1, max_length=20)
    next: NodeRef | None = None

    @property
    def content_kind(self) -> str:
        return next(k for k in _MESSAGE_KINDS if getattr(self, k) is not None)

    @model_validator(mode="after")
    def _one_content(self) -> MessageNode:
        present = [k for k in _MESSAGE_KINDS if getattr(self, k) is not None]
        if len(present) != 1:
            kinds = ", ".join(_MESSAGE_KINDS)
            found = ", ".join(present) or "none"
            raise ValueError(f"a message node needs exactly one of {kinds} (found: {found})")
        return self

    def transitions(self) -> list[Transition]:
        out: list[Transition] = []
        _edge(out, ("next",), self.next, "next")
        _edge(out, ("on_failed",), self.on_failed, "failed", "failed")
        return out


_MESSAGE_KINDS = ("text", "image", "video", "audio", "document", "sticker", "location", "contacts")


class Button(_Base):
    id: str = Field(min_length=1, description="reply id (≤256, unique in the node)")
    title: Text = Field(min_length=1, description="button title (≤20, unique in the node)")
    next: NodeRef | None = Field(None, description="where a tap goes (default: the node's `next`)")


class ButtonsNode(_Sending, _Waiting):
    """Reply buttons (1–3); waits for a tap. Typing something else goes to `no_match` (default: ask again)."""

    type: Literal["buttons"]
    text: Text = Field(description="body (≤1024)")
    header: Text | MediaHeader | None = None
    footer: Text | None = None
    buttons: list[Button] = Field(min_length=1)
    next: NodeRef | None = None
    no_match: NodeRef | None = None
    save_as: VarName | None = Field(None, description="save the tapped button id here")

    @property
    def waits(self) -> bool:
        return True

    def transitions(self) -> list[Transition]:
        out: list[Transition] = []
        for i, button in enumerate(self.buttons):
            _edge(out, ("buttons", i, "next"), button.next or self.next, "button", button.title)
        _edge(out, ("no_match",), self.no_match, "no_match", "no match")
        _edge(out, ("on_timeout",), self.on_timeout, "timeout", "timeout")
        _edge(out, ("on_failed",), self.on_failed, "failed", "failed")
        return out


class ListRow(_Base):
    id: str = Field(min_length=1, description="row id (≤200, unique in the node)")
    title: Text = Field(min_length=1, description="≤24")
    description: Text | None = Field(None, description="≤72")
    next: NodeRef | None = None


class ListSection(_Base):
    title: Text | None = Field(None, description="≤24; required when there is more than one section")
    rows: list[ListRow] = Field(min_length=1)


class ListNode(_Sending, _Waiting):
    """A list message (≤10 rows in ≤10 sections); waits for a choice."""

    type: Literal["list"]
    text: Text = Field(description="body (≤4096)")
    button: Text = Field(description="label of the button that opens the list (≤20)")
    header: Text | None = None
    footer: Text | None = None
    sections: list[ListSection] = Field(min_length=1)
    next: NodeRef | None = None
    no_match: NodeRef | None = None
    save_as: VarName | None = Field(None, description="save the chosen row id here")

    @property
    def waits(self) -> bool:
        return True

    def rows(self) -> list[tuple[int, int, ListRow]]:
        return [(s, r, row) for s, section in enumerate(self.sections) for r, row in enumerate(section.rows)]

    def transitions(self) -> list[Transition]:
        out: list[Transition] = []
        for s, r, row in self.rows():
            _edge(out, ("sections", s, "rows", r, "next"), row.next or self.next, "row", row.title)
        _edge(out, ("no_match",), self.no_match, "no_match", "no match")
        _edge(out, ("on_timeout",), self.on_timeout, "timeout", "timeout")
        _edge(out, ("on_failed",), self.on_failed, "failed", "failed")
        return out


class QuestionNode(_Sending, _Waiting):
    """Ask, check the answer with `validate`, re-ask up to `retries` times, save it to `vars.<save_as>`."""

    type: Literal["question"]
    text: Text
    validate_: AnswerRule = Field(default_factory=TextRule, alias="validate")
    save_as: VarName
    retries: int = Field(2, ge=0, le=10)
    retry_text: Text | None = Field(None, description="sent when an answer is refused (default: `text` again)")
    on_fail: NodeRef | None = Field(None, description="where to go when all retries are used up")
    next: NodeRef | None = None

    @property
    def waits(self) -> bool:
        return True

    def transitions(self) -> list[Transition]:
        out: list[Transition] = []
        _edge(out, ("next",), self.next, "next")
        _edge(out, ("on_fail",), self.on_fail, "fail", "invalid")
        _edge(out, ("on_timeout",), self.on_timeout, "timeout", "timeout")
        _edge(out, ("on_failed",), self.on_failed, "failed", "failed")
        return out


class TemplateNode(_Sending, _Waiting):
    """Send an approved template (the only message allowed outside the 24 h window).

    Parameters are templates. With `replies` (quick-reply payload → node) the node waits for a tap.
    """

    type: Literal["template"]
    name: str = Field(min_length=1, max_length=512)
    language: str = Field("en_US", min_length=2, max_length=16)
    params: list[Text] | dict[str, Text] = Field(
        default_factory=list, description="body parameters: a list ({{1}}, {{2}}) or a mapping (named)"
    )
    header: Text | MediaHeader | None = Field(None, description="header parameter: text or media")
    components: list[dict[str, Any]] | None = Field(
        None, description="raw Cloud API components (strings are templates); instead of params/header"
    )
    replies: dict[str, NodeRef] = Field(default_factory=dict, description="quick-reply payload → node")
    no_match: NodeRef | None = None
    next: NodeRef | None = None

    @model_validator(mode="after")
    def _raw_or_short(self) -> TemplateNode:
        if self.components is not None and (self.params or self.header is not None):
            raise ValueError("use either 'components' or 'params'/'header', not both")
        return self

    @property
    def waits(self) -> bool:
        return bool(self.replies)

    def transitions(self) -> list[Transition]:
        out: list[Transition] = []
        for payload, target in self.replies.items():
            _edge(out, ("replies", payload), target, "reply", payload)
        _edge(out, ("next",), self.next, "next")
        _edge(out, ("no_match",), self.no_match, "no_match", "no match")
        _edge(out, ("on_timeout",), self.on_timeout, "timeout", "timeout")
        _edge(out, ("on_failed",), self.on_failed, "failed", "failed")
        return out


class Branch(_Base):
    if_: str = Field(alias="if", min_length=1, max_length=4000, description="a Jinja expression")
    next: NodeRef


class ConditionNode(_Node):
    """The first branch whose `if` is true wins; otherwise `else`."""

    type: Literal["condition"]
    branches: list[Branch] = Field(min_length=1)
    else_: NodeRef | None = Field(None, alias="else")

    def transitions(self) -> list[Transition]:
        out: list[Transition] = []
        for i, branch in enumerate(self.branches):
            _edge(out, ("branches", i, "next"), branch.next, "branch", branch.if_)
        _edge(out, ("else",), self.else_, "else", "else")
        return out


class SetNode(_Node):
    """Set variables. A string that is one `{{ expr }}` keeps the expression's type; other strings render."""

    type: Literal["set"]
    vars: dict[VarName, Any] = Field(min_length=1)
    next: NodeRef | None = None

    def transitions(self) -> list[Transition]:
        out: list[Transition] = []
        _edge(out, ("next",), self.next, "next")
        return out


class HttpNode(_Node):
    """Call an HTTP API; map the response into variables with `save` (over `response.status/json/text/headers`).

    A network error, a timeout or a status ≥ 400 goes to `on_error`.
    """

    type: Literal["http"]
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"] = "GET"
    url: Text
    headers: dict[str, Text] = Field(default_factory=dict)
    query: dict[str, Text] = Field(default_factory=dict)
    body: Text | None = Field(None, description="raw request body (a template)")
    json_: Any = Field(None, alias="json", description="JSON request body; string leaves are templates")
    timeout: Duration = Field(timedelta(seconds=10), description="≤ 60s")
    save: dict[VarName, Any] = Field(default_factory=dict)
    next: NodeRef | None = None
    on_error: NodeRef | None = None

    @model_validator(mode="after")
    def _one_body(self) -> HttpNode:
        if self.body is not None and self.json_ is not None:
            raise ValueError("use either 'body' or 'json', not both")
        return self

    def transitions(self) -> list[Transition]:
        out: list[Transition] = []
        _edge(out, ("next",), self.next, "next")
        _edge(out, ("on_error",), self.on_error, "error", "error")
        return out


class WaitNode(_Node):
    """A durable delay: the session sleeps for `duration` (a timer survives restarts), then `next`."""

    type: Literal["wait"]
    duration: Duration
    next: NodeRef | None = None

    @property
    def waits(self) -> bool:
        return True

    def transitions(self) -> list[Transition]:
        out: list[Transition] = []
        _edge(out, ("next",), self.next, "next")
        return out


class HandoffNode(_Sending):
    """A human takes over. When the agent hands back, the flow resumes at `then` (else the session ends)."""

    type: Literal["handoff"]
    text: Text | None = Field(None, description="told to the user when the handoff starts")
    queue: str | None = Field(None, max_length=128, description="team or queue for the agent inbox")
    note: Text | None = Field(None, description="context for the agent")
    timeout: Duration | None = Field(None, description="hand back automatically after this long")
    then: NodeRef | None = None

    @property
    def waits(self) -> bool:
        return True

    def transitions(self) -> list[Transition]:
        out: list[Transition] = []
        _edge(out, ("then",), self.then, "then", "hand back")
        _edge(out, ("on_failed",), self.on_failed, "failed", "failed")
        return out


class GotoNode(_Node):
    """Jump to a node of this flow (`next`) or to another flow (`flow`, entering at `node` or its start)."""

    type: Literal["goto"]
    next: NodeRef | None = None
    flow: FlowRef | None = None
    node: NodeRef | None = Field(None, description="entry node in `flow` (default: its start)")

    @model_validator(mode="after")
    def _one_target(self) -> GotoNode:
        if (self.next is None) == (self.flow is None):
            raise ValueError("goto needs exactly one of 'next' (a node here) or 'flow' (another flow)")
        if self.node is not None and self.flow is None:
            raise ValueError("'node' only goes with 'flow'")
        return self

    def transitions(self) -> list[Transition]:
        out: list[Transition] = []
        _edge(out, ("next",), self.next, "next")
        return out


class SubflowNode(_Node):
    """Run another flow; when it ends, come back here and continue at `next`."""

    type: Literal["subflow"]
    flow: FlowRef
    node: NodeRef | None = None
    vars: dict[VarName, Any] = Field(default_factory=dict, description="the sub-flow's starting variables")
    save_as: VarName | None = Field(None, description="store the sub-flow's final vars here")
    next: NodeRef | None = None

    def transitions(self) -> list[Transition]:
        out: list[Transition] = []
        _edge(out, ("next",), self.next, "next", f"after {self.flow}")
        return out


class EndNode(_Node):
    """The session ends (or returns to the calling flow)."""

    type: Literal["end"]
    reason: str | None = Field(None, max_length=200)


Node = Annotated[
    MessageNode
    | ButtonsNode
    | ListNode
    | QuestionNode
    | TemplateNode
    | ConditionNode
    | SetNode
    | HttpNode
    | WaitNode
    | HandoffNode
    | GotoNode
    | SubflowNode
    | EndNode,
    Discriminator("type"),
]

NODE_TYPES: tuple[str, ...] = (
    "message", "buttons", "list", "question", "template", "condition", "set",
    "http", "wait", "handoff", "goto", "subflow", "end",
)  # fmt: skip
SENDING_TYPES = frozenset({"message", "buttons", "list", "question", "template", "handoff"})
