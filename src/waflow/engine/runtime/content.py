"""Cloud-API-shaped message content for the sending nodes, rendered through the expression sandbox."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from waflow.engine.flows.nodes import (
    ButtonsNode,
    ListNode,
    Location,
    Media,
    MediaHeader,
    MessageNode,
    TemplateNode,
)
from waflow.engine.runtime.turn import StepError

Render = Callable[[str], str]
RenderValue = Callable[[Any], Any]


def _media(media: Media, render: Render) -> dict[str, Any]:
    out: dict[str, Any] = {"link": render(media.link)} if media.link is not None else {"id": media.id}
    if media.caption is not None:
        out["caption"] = render(media.caption)
    if media.filename is not None:
        out["filename"] = media.filename
    if media.voice:
        out["voice"] = True
    return out


def _coordinate(value: float | str, render: Render, what: str) -> float:
    if isinstance(value, float | int):
        return float(value)
    text = render(value)
    try:
        return float(text)
    except ValueError:
        raise StepError(f"{what} {text!r} is not a number") from None


def _location(loc: Location, render: Render) -> dict[str, Any]:
    out: dict[str, Any] = {
        "latitude": _coordinate(loc.latitude, render, "latitude"),
        "longitude": _coordinate(loc.longitude, render, "longitude"),
    }
    if loc.name is not None:
        out["name"] = render(loc.name)
    if loc.address is not None:
        out["address"] = render(loc.address)
    return out


def message_content(node: MessageNode, render: Render, render_value: RenderValue) -> tuple[str, dict[str, Any]]:
    kind = node.content_kind
    if kind == "text":
        assert node.text is not None
        body = render(node.text)
        if not body.strip():
            raise StepError("the text renders empty")
        return "text", {"body": body, "preview_url": node.preview_url}
    if kind == "location":
        assert node.location is not None
        return "location", _location(node.location, render)
    if kind == "contacts":
        return "contacts", {"contacts": render_value(node.contacts)}
    media = getattr(node, kind)
    assert isinstance(media, Media)
    return kind, _media(media, render)


def _header(header: str | MediaHeader | None, render: Render) -> dict[str, Any] | None:
    if header is None:
        return None
    if isinstance(header, str):
        return {"type": "text", "text": render(header)}
    return {"type": header.type, header.type: _media(header, render)}


def buttons_content(node: ButtonsNode, render: Render) -> dict[str, Any]:
    content: dict[str, Any] = {
        "type": "button",
        "body": {"text": render(node.text)},
        "action": {
            "buttons": [{"type": "reply", "reply": {"id": b.id, "title": render(b.title)}} for b in node.buttons]
        },
    }
    header = _header(node.header, render)
    if header is not None:
        content["header"] = header
    if node.footer is not None:
        content["footer"] = {"text": render(node.footer)}
    return content


def list_content(node: ListNode, render: Render) -> dict[str, Any]:
    sections = []
    for section in node.sections:
        rows = []
        for row in section.rows:
            item = {"id": row.id, "title": render(row.title)}
            if row.description is not None:
                item["description"] = render(row.description)
            rows.append(item)
        out: dict[str, Any] = {"rows": rows}
        if section.title is not None:
            out["title"] = render(section.title)
        sections.append(out)
    content: dict[str, Any] = {
        "type": "list",
        "body": {"text": render(node.text)},
        "action": {"button": render(node.button), "sections": sections},
    }
    if node.header is not None:
        content["header"] = {"type": "text", "text": render(node.header)}
    if node.footer is not None:
        content["footer"] = {"text": render(node.footer)}
    return content


def template_content(node: TemplateNode, render: Render, render_value: RenderValue) -> dict[str, Any]:
    content: dict[str, Any] = {"name": node.name, "language": {"code": node.language}}
    if node.components is not None:
        content["components"] = render_value(node.components)
        return content
    components: list[dict[str, Any]] = []
    if node.header is not None:
        header = _header(node.header, render)
        assert header is not None
        components.append({"type": "header", "parameters": [header]})
    if isinstance(node.params, dict):
        params = [{"type": "text", "parameter_name": k, "text": render(v)} for k, v in node.params.items()]
    else:
        params = [{"type": "text", "text": render(v)} for v in node.params]
    if params:
        components.append({"type": "body", "parameters": params})
    if components:
        content["components"] = components
    return content
