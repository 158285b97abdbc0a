"""WhatsApp's limits on interactive and text messages (Cloud API reference §2.8), checked per node.

A literal text is measured exactly. A templated text's final length is known only at runtime: its
literal part alone must fit, and short fields (titles, labels) get a warning to keep it short.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from waflow.engine.flows.expressions import is_templated, static_text
from waflow.engine.flows.nodes import (
    ButtonsNode,
    HandoffNode,
    ListNode,
    Media,
    MediaHeader,
    MessageNode,
    QuestionNode,
)
from waflow.engine.flows.problems import FlowProblem, error, warning

TEXT_BODY = 4096
BUTTONS_BODY = 1024
LIST_BODY = 4096
CAPTION = 1024
HEADER = 60
FOOTER = 60
MAX_BUTTONS = 3
BUTTON_TITLE = 20
BUTTON_ID = 256
LIST_BUTTON = 20
MAX_SECTIONS = 10
MAX_ROWS = 10
SECTION_TITLE = 24
ROW_ID = 200
ROW_TITLE = 24
ROW_DESCRIPTION = 72
SHORT_FIELD = 72  # a templated field at most this long gets a "length known only at runtime" warning

Path = tuple[str | int, ...]


def _length(node_id: str, path: Path, text: str | None, limit: int, what: str) -> Iterable[FlowProblem]:
    if text is None:
        return
    if is_templated(text):
        literal = static_text(text)
        if len(literal) > limit:
            yield error(
                "too-long",
                f"{what}: its literal text alone is {len(literal)} characters (limit {limit})",
                node_id,
                path,
            )
        elif limit <= SHORT_FIELD:
            yield warning(
                "templated-length",
                f"{what} is templated: its length (limit {limit}) is known only at runtime",
                node_id,
                path,
            )
    elif len(text) > limit:
        yield error("too-long", f"{what} is {len(text)} characters; WhatsApp allows at most {limit}", node_id, path)
    elif not text.strip():
        yield error("empty-text", f"{what} is empty", node_id, path)


def _media(node_id: str, path: Path, media: Media, *, caption_allowed: bool) -> Iterable[FlowProblem]:
    if media.caption is not None:
        if caption_allowed:
            yield from _length(node_id, (*path, "caption"), media.caption, CAPTION, "caption")
        else:
            yield error(
                "caption-not-allowed", f"{path[-1]} messages cannot have a caption", node_id, (*path, "caption")
            )
    if media.link is not None and not is_templated(media.link) and not media.link.startswith("https://"):
        yield warning("media-link", "media links should be public https:// URLs", node_id, (*path, "link"))


def _header(node_id: str, header: str | MediaHeader | None) -> Iterable[FlowProblem]:
    if isinstance(header, str):
        yield from _length(node_id, ("header",), header, HEADER, "header")
    elif header is not None:
        yield from _media(node_id, ("header",), header, caption_allowed=False)


def check_message(node_id: str, node: MessageNode) -> Iterable[FlowProblem]:
    yield from _length(node_id, ("text",), node.text, TEXT_BODY, "text")
    for kind in ("image", "video", "document", "audio", "sticker"):
        media = getattr(node, kind)
        if media is not None:
            yield from _media(node_id, (kind,), media, caption_allowed=kind in ("image", "video", "document"))
            if media.voice and kind != "audio":
                yield warning("voice", "'voice' only applies to audio", node_id, (kind, "voice"))


def _duplicates(values: Sequence[tuple[Path, str]], node_id: str, what: str) -> Iterable[FlowProblem]:
    seen: dict[str, Path] = {}
    for path, value in values:
        if value in seen:
            yield error(f"duplicate-{what.replace(' ', '-')}", f"duplicate {what} {value!r}", node_id, path)
        else:
            seen[value] = path


def check_buttons(node_id: str, node: ButtonsNode) -> Iterable[FlowProblem]:
    yield from _length(node_id, ("text",), node.text, BUTTONS_BODY, "body text")
    yield from _header(node_id, node.header)
    yield from _length(node_id, ("footer",), node.footer, FOOTER, "footer")
    if len(node.buttons) > MAX_BUTTONS:
        yield error(
            "too-many-buttons",
            f"{len(node.buttons)} buttons; WhatsApp allows at most {MAX_BUTTONS} (use a list node for more choices)",
            node_id,
            ("buttons",),
        )
    for i, button in enumerate(node.buttons):
        yield from _length(node_id, ("buttons", i, "title"), button.title, BUTTON_TITLE, "button title")
        if len(button.id) > BUTTON_ID:
            yield error(
                "too-long",
                f"button id is {len(button.id)} characters (limit {BUTTON_ID})",
                node_id,
                ("buttons", i, "id"),
            )
        if is_templated(button.id):
            yield warning("templated-id", "button ids are not templated", node_id, ("buttons", i, "id"))
    yield from _duplicates([(("buttons", i, "id"), b.id) for i, b in enumerate(node.buttons)], node_id, "button id")
    literal_titles = [
        (("buttons", i, "title"), b.title) for i, b in enumerate(node.buttons) if not is_templated(b.title)
    ]
    yield from _duplicates(literal_titles, node_id, "button title")


def check_list(node_id: str, node: ListNode) -> Iterable[FlowProblem]:
    yield from _length(node_id, ("text",), node.text, LIST_BODY, "body text")
    yield from _length(node_id, ("button",), node.button, LIST_BUTTON, "list button label")
    yield from _length(node_id, ("header",), node.header, HEADER, "header")
    yield from _length(node_id, ("footer",), node.footer, FOOTER, "footer")
    if len(node.sections) > MAX_SECTIONS:
        yield error(
            "too-many-sections", f"{len(node.sections)} sections (limit {MAX_SECTIONS})", node_id, ("sections",)
        )
    rows = node.rows()
    if len(rows) > MAX_ROWS:
        yield error(
            "too-many-rows",
            f"{len(rows)} rows; WhatsApp allows at most {MAX_ROWS} in all sections together",
            node_id,
            ("sections",),
        )
    for s, section in enumerate(node.sections):
        path: Path = ("sections", s, "title")
        if section.title is None and len(node.sections) > 1:
            yield error(
                "section-title", "a section title is required when there is more than one section", node_id, path
            )
        yield from _length(node_id, path, section.title, SECTION_TITLE, "section title")
    for s, r, row in rows:
        base: Path = ("sections", s, "rows", r)
        yield from _length(node_id, (*base, "title"), row.title, ROW_TITLE, "row title")
        yield from _length(node_id, (*base, "description"), row.description, ROW_DESCRIPTION, "row description")
        if len(row.id) > ROW_ID:
            yield error("too-long", f"row id is {len(row.id)} characters (limit {ROW_ID})", node_id, (*base, "id"))
    yield from _duplicates([(("sections", s, "rows", r, "id"), row.id) for s, r, row in rows], node_id, "row id")


def check_question(node_id: str, node: QuestionNode) -> Iterable[FlowProblem]:
    yield from _length(node_id, ("text",), node.text, TEXT_BODY, "text")
    yield from _length(node_id, ("retry_text",), node.retry_text, TEXT_BODY, "retry text")


def check_handoff(node_id: str, node: HandoffNode) -> Iterable[FlowProblem]:
    yield from _length(node_id, ("text",), node.text, TEXT_BODY, "text")
