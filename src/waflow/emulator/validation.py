"""Meta's side of request validation for `POST /{phone-number-id}/messages`.

Written from the reference (limits in §2), independently of waflow's client, so the two
cannot merely agree. Every rejection is a `GraphError` whose `details` names the field and
the limit the way Meta's answers do ("Button title length invalid. Min length: 1, Max length: 20").
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from .graph_errors import GraphError, invalid, missing, param

MESSAGE_TYPES = frozenset(
    {"text", "image", "audio", "video", "document", "sticker", "location", "contacts",
     "interactive", "template", "reaction"}
)
MEDIA_TYPES = frozenset({"image", "audio", "video", "document", "sticker"})
CAPTIONED = frozenset({"image", "video", "document"})
INTERACTIVE_TYPES = frozenset(
    {"button", "list", "cta_url", "location_request_message", "flow", "product", "product_list",
     "catalog_message", "voice_call", "call_permission_request", "carousel"}
)
TEMPLATE_PARAM_TYPES = frozenset(
    {"text", "currency", "date_time", "image", "video", "document", "location", "payload", "coupon_code",
     "action", "product", "limited_time_offer", "order_status", "tap_target_configuration"}
)
BUTTON_SUB_TYPES = frozenset({"quick_reply", "url", "copy_code", "flow", "catalog", "mpm", "voice_call",
                              "order_details", "phone_number"})
_PHONE_JUNK = re.compile(r"[\s\-().]")
_BSUID = re.compile(r"^[A-Z]{2}\.[0-9A-Za-z]+$")


@dataclass(slots=True)
class SendRequest:
    """A validated send: what the app layer needs to check limits, record and answer."""

    kind: str  # "message" | "read" | "typing"
    type: str = ""
    content: Any = None
    to_input: str | None = None
    wa_id: str | None = None
    user_id: str | None = None
    recipient_type: str = "individual"
    context_id: str | None = None
    callback_data: str | None = None
    read_message_id: str | None = None
    template_params: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


def _length(value: Any, what: str, max_len: int, min_len: int = 1) -> str:
    if not isinstance(value, str):
        raise param(f"Param {what} must be a string.")
    if not min_len <= len(value) <= max_len:
        raise invalid(f"{what} length invalid. Min length: {min_len}, Max length: {max_len}")
    return value


def _obj(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise param(f"Param {what} must be a JSON object.")
    return value


def _required(obj: dict[str, Any], key: str, where: str) -> Any:
    if key not in obj or obj[key] is None:
        raise missing(f"Parameter '{where}{key}' is required.")
    return obj[key]


def _url(value: Any, what: str) -> str:
    if not isinstance(value, str) or not re.match(r"^https?://[^\s/$.?#][^\s]*$", value):
        raise invalid(f"{what} must be a valid http(s) URL.")
    return value


def normalise_phone(raw: str, default_country_code: str) -> str:
    """`to` as Meta reads it: strip formatting; no `+` and ≤10 digits → sender's country code prepended."""
    plus = raw.strip().startswith("+")
    digits = _PHONE_JUNK.sub("", raw.strip().lstrip("+"))
    if not digits.isdigit():
        raise GraphError(100, "Invalid parameter 'to': not a phone number.", message="(#100) Invalid parameter")
    if not plus and len(digits) <= 10 and not digits.startswith(default_country_code):
        digits = default_country_code + digits
    if not 7 <= len(digits) <= 15:
        raise GraphError(100, "Invalid parameter 'to': phone number length.", message="(#100) Invalid parameter")
    return digits


def validate_send(body: Any, *, default_country_code: str, business_number: str) -> SendRequest:
    if not isinstance(body, dict):
        raise param("The request body must be a JSON object.")
    product = body.get("messaging_product")
    if product is None:
        raise GraphError(100, None, message="(#100) The parameter messaging_product is required.")
    if product != "whatsapp":
        raise param(f'Param messaging_product must be one of {{WHATSAPP}} - got "{str(product)[:40]}".')

    if "status" in body:
        return _validate_status_call(body)

    req = SendRequest(kind="message")
    rtype = body.get("recipient_type", "individual")
    if rtype not in ("individual", "group"):
        raise param("Param recipient_type must be one of {INDIVIDUAL, GROUP}.")
    req.recipient_type = rtype
    to, recipient = body.get("to"), body.get("recipient")
    if to is None and recipient is None:
        raise GraphError(100, None, message="(#100) The parameter to is required.")
    if to is not None:
        if not isinstance(to, str):
            raise param("Param to must be a string.")
        req.to_input = to
        if rtype == "group":
            req.wa_id = to
        else:
            req.wa_id = normalise_phone(to, default_country_code)
            if req.wa_id == business_number:
                raise GraphError(131021)
    elif recipient is not None:
        if not isinstance(recipient, str) or not _BSUID.match(recipient):
            raise param("Param recipient must be a business-scoped user id.")
        req.to_input = recipient
        req.user_id = recipient

    mtype = body.get("type", "text")
    if not isinstance(mtype, str) or mtype not in MESSAGE_TYPES:
        raise GraphError(131051, f"Message type '{str(mtype)[:40]}' is not currently supported.")
    req.type = mtype
    if mtype not in body:
        raise missing(f"Parameter '{mtype}' is required.")
    content = body[mtype]

    ctx = body.get("context")
    if ctx is not None:
        ctx = _obj(ctx, "context")
        mid = _required(ctx, "message_id", "context.")
        if not isinstance(mid, str) or not mid:
            raise invalid("context.message_id must be a message id.")
        if mtype == "reaction":
            raise invalid("Context is not supported for reaction messages.")
        req.context_id = mid
    cb = body.get("biz_opaque_callback_data")
    if cb is not None:
        _length(cb, "biz_opaque_callback_data", 512, 0)
        req.callback_data = cb

    if mtype == "text":
        _text(content)
    elif mtype in MEDIA_TYPES:
        _media(content, mtype)
    elif mtype == "location":
        _location(content)
    elif mtype == "contacts":
        _contacts(content)
    elif mtype == "reaction":
        _reaction(content)
    elif mtype == "interactive":
        _interactive(content)
    else:
        req.template_params = _template(content)
    req.content = content
    return req


def _validate_status_call(body: dict[str, Any]) -> SendRequest:
    if body.get("status") != "read":
        raise param("Param status must be one of {READ}.")
    mid = body.get("message_id")
    if not isinstance(mid, str) or not mid:
        raise GraphError(100, None, message="(#100) The parameter message_id is required.")
    ti = body.get("typing_indicator")
    if ti is not None:
        ti = _obj(ti, "typing_indicator")
        if ti.get("type") != "text":
            raise param("Param typing_indicator[type] must be one of {TEXT}.")
    return SendRequest(kind="typing" if ti is not None else "read", read_message_id=mid)


def _text(content: Any) -> None:
    c = _obj(content, "text")
    _length(_required(c, "body", "text."), "Message text", 4096)
    if "preview_url" in c and not isinstance(c["preview_url"], bool):
        raise param("Param text[preview_url] must be a boolean.")


def _media(content: Any, mtype: str) -> None:
    c = _obj(content, mtype)
    has_id, has_link = c.get("id") is not None, c.get("link") is not None
    if has_id and has_link:
        raise invalid(f"Please specify either 'id' or 'link' for {mtype}, not both.")
    if not has_id and not has_link:
        raise missing(f"Parameter '{mtype}.id' or '{mtype}.link' is required.")
    if has_id and (not isinstance(c["id"], str) or not c["id"]):
        raise invalid(f"{mtype}.id must be a media id.")
    if has_link:
        _url(c["link"], f"{mtype}.link")
    if "caption" in c:
        if mtype not in CAPTIONED:
            raise invalid(f"Parameter 'caption' is not supported for {mtype} messages.")
        _length(c["caption"], "Caption", 1024, 0)
    if "filename" in c:
        if mtype != "document":
            raise invalid(f"Parameter 'filename' is not supported for {mtype} messages.")
        _length(c["filename"], "Filename", 240)
    if "voice" in c:
        if mtype != "audio":
            raise invalid(f"Parameter 'voice' is not supported for {mtype} messages.")
        if not isinstance(c["voice"], bool):
            raise param("Param audio[voice] must be a boolean.")


def _coordinate(value: Any, what: str, bound: float) -> None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise invalid(f"{what} must be a number.") from None
    if isinstance(value, bool) or not -bound <= number <= bound:
        raise invalid(f"{what} is out of range. Min: {-bound}, Max: {bound}")


def _location(content: Any) -> None:
    c = _obj(content, "location")
    _coordinate(_required(c, "latitude", "location."), "latitude", 90)
    _coordinate(_required(c, "longitude", "location."), "longitude", 180)
    for key in ("name", "address"):
        if key in c and not isinstance(c[key], str):
            raise param(f"Param location[{key}] must be a string.")


def _contacts(content: Any) -> None:
    if not isinstance(content, list) or not content:
        raise invalid("contacts must be a non-empty array.")
    for i, item in enumerate(content):
        c = _obj(item, f"contacts[{i}]")
        name = _obj(_required(c, "name", f"contacts[{i}]."), f"contacts[{i}].name")
        _length(_required(name, "formatted_name", f"contacts[{i}].name."), "formatted_name", 1024)
        for key in ("phones", "emails", "addresses", "urls"):
            if key in c and not (isinstance(c[key], list) and all(isinstance(x, dict) for x in c[key])):
                raise param(f"Param contacts[{i}][{key}] must be an array of objects.")


def _reaction(content: Any) -> None:
    c = _obj(content, "reaction")
    mid = _required(c, "message_id", "reaction.")
    if not isinstance(mid, str) or not mid:
        raise invalid("reaction.message_id must be a message id.")
    emoji = c.get("emoji", "")
    if not isinstance(emoji, str) or len(emoji) > 10:
        raise invalid("Reaction emoji is not valid.")


def _interactive(content: Any) -> None:
    c = _obj(content, "interactive")
    itype = _required(c, "type", "interactive.")
    if not isinstance(itype, str) or itype not in INTERACTIVE_TYPES:
        raise invalid(f"Interactive message type '{str(itype)[:40]}' is not supported.")
    action = _obj(_required(c, "action", "interactive."), "interactive.action")
    body_max = 4096 if itype == "list" else 1024
    if "body" in c or itype not in ("product", "catalog_message", "voice_call", "call_permission_request"):
        body = _obj(_required(c, "body", "interactive."), "interactive.body")
        _length(_required(body, "text", "interactive.body."), "Body text", body_max)
    if "footer" in c:
        _length(_required(_obj(c["footer"], "interactive.footer"), "text", "interactive.footer."), "Footer text", 60)
    _header(c.get("header"), itype)
    if itype == "button":
        _reply_buttons(action)
    elif itype == "list":
        _list(action)
    elif itype == "cta_url":
        if action.get("name") != "cta_url":
            raise invalid("action.name must be 'cta_url'.")
        params = _obj(_required(action, "parameters", "action."), "action.parameters")
        _length(_required(params, "display_text", "action.parameters."), "Button display text", 20)
        _url(_required(params, "url", "action.parameters."), "action.parameters.url")
    elif itype == "location_request_message":
        if action.get("name") != "send_location":
            raise invalid("action.name must be 'send_location'.")
    elif itype == "flow":
        _flow(action)
    elif itype == "product":
        _length(_required(action, "catalog_id", "action."), "catalog_id", 100)
        _length(_required(action, "product_retailer_id", "action."), "product_retailer_id", 100)
    elif itype == "product_list":
        _product_list(action)
    elif itype == "catalog_message" and action.get("name") != "catalog_message":
        raise invalid("action.name must be 'catalog_message'.")


def _header(header: Any, itype: str) -> None:
    if header is None:
        if itype == "product_list":
            raise missing("Parameter 'interactive.header' is required.")
        return
    if itype in ("location_request_message", "product", "catalog_message"):
        raise invalid(f"Header is not supported for interactive {itype} messages.")
    h = _obj(header, "interactive.header")
    htype = _required(h, "type", "interactive.header.")
    allowed = ("text",) if itype in ("list", "product_list") else ("text", "image", "video", "document")
    if htype not in allowed:
        raise invalid(f"Header type '{str(htype)[:20]}' is not supported for interactive {itype} messages.")
    if htype == "text":
        _length(_required(h, "text", "interactive.header."), "Header text", 60)
    else:
        _media(_required(h, htype, "interactive.header."), htype)


def _reply_buttons(action: dict[str, Any]) -> None:
    buttons = _required(action, "buttons", "action.")
    if not isinstance(buttons, list) or not 1 <= len(buttons) <= 3:
        count = len(buttons) if isinstance(buttons, list) else 0
        raise invalid(f"Invalid buttons count. Min: 1, Max: 3, got {count}")
    ids: set[str] = set()
    titles: set[str] = set()
    for i, b in enumerate(buttons):
        b = _obj(b, f"action.buttons[{i}]")
        if b.get("type") != "reply":
            raise invalid("Button type must be 'reply'.")
        reply = _obj(_required(b, "reply", f"action.buttons[{i}]."), f"action.buttons[{i}].reply")
        bid = _length(_required(reply, "id", f"action.buttons[{i}].reply."), "Button id", 256)
        title = _length(_required(reply, "title", f"action.buttons[{i}].reply."), "Button title", 20)
        if bid in ids:
            raise invalid("Button id is not unique.")
        if title.strip().lower() in titles:
            raise invalid("Button title is not unique.")
        ids.add(bid)
        titles.add(title.strip().lower())


def _list(action: dict[str, Any]) -> None:
    _length(_required(action, "button", "action."), "Button label", 20)
    sections = _required(action, "sections", "action.")
    if not isinstance(sections, list) or not 1 <= len(sections) <= 10:
        raise invalid("Invalid number of sections. Min: 1, Max: 10")
    total = 0
    ids: set[str] = set()
    for i, s in enumerate(sections):
        s = _obj(s, f"action.sections[{i}]")
        if len(sections) > 1 or "title" in s:
            _length(_required(s, "title", f"action.sections[{i}]."), "Section title", 24)
        rows = _required(s, "rows", f"action.sections[{i}].")
        if not isinstance(rows, list) or not rows:
            raise invalid("Section rows must be a non-empty array.")
        for j, r in enumerate(rows):
            r = _obj(r, f"action.sections[{i}].rows[{j}]")
            rid = _length(_required(r, "id", f"action.sections[{i}].rows[{j}]."), "Row id", 200)
            _length(_required(r, "title", f"action.sections[{i}].rows[{j}]."), "Row title", 24)
            if "description" in r:
                _length(r["description"], "Row description", 72, 0)
            if rid in ids:
                raise invalid("Row id is not unique.")
            ids.add(rid)
        total += len(rows)
    if total > 10:
        raise invalid(f"Invalid number of rows. Min: 1, Max: 10, got {total}")


def _flow(action: dict[str, Any]) -> None:
    if action.get("name") != "flow":
        raise invalid("action.name must be 'flow'.")
    p = _obj(_required(action, "parameters", "action."), "action.parameters")
    if str(_required(p, "flow_message_version", "action.parameters.")) != "3":
        raise invalid("flow_message_version must be '3'.")
    if ("flow_id" in p) == ("flow_name" in p):
        raise invalid("Exactly one of flow_id or flow_name is required.")
    _length(_required(p, "flow_cta", "action.parameters."), "Flow CTA", 30)
    if p.get("mode", "published") not in ("published", "draft"):
        raise invalid("mode must be one of {published, draft}.")
    if p.get("flow_action", "navigate") not in ("navigate", "data_exchange"):
        raise invalid("flow_action must be one of {navigate, data_exchange}.")
    if p.get("flow_token") is not None and not isinstance(p["flow_token"], str):  # pywa sends null
        raise param("Param flow_token must be a string.")


def _product_list(action: dict[str, Any]) -> None:
    _length(_required(action, "catalog_id", "action."), "catalog_id", 100)
    sections = _required(action, "sections", "action.")
    if not isinstance(sections, list) or not 1 <= len(sections) <= 10:
        raise invalid("Invalid number of sections. Min: 1, Max: 10")
    total = 0
    for i, s in enumerate(sections):
        s = _obj(s, f"action.sections[{i}]")
        _length(_required(s, "title", f"action.sections[{i}]."), "Section title", 24)
        items = _required(s, "product_items", f"action.sections[{i}].")
        if not isinstance(items, list) or not items:
            raise invalid("product_items must be a non-empty array.")
        for j, it in enumerate(items):
            it = _obj(it, f"action.sections[{i}].product_items[{j}]")
            _length(_required(it, "product_retailer_id", f"product_items[{j}]."), "product_retailer_id", 100)
        total += len(items)
    if total > 30:
        raise invalid(f"Invalid number of product items. Min: 1, Max: 30, got {total}")


def _template(content: Any) -> dict[str, list[dict[str, Any]]]:
    """Shape checks only; the registry (templates.py) checks existence and counts.

    Returns the parameters per component key: "header", "body", "button:<index>".
    """
    c = _obj(content, "template")
    name = _required(c, "name", "template.")
    if not isinstance(name, str) or not name:
        raise invalid("template.name must be a non-empty string.")
    lang = _obj(_required(c, "language", "template."), "template.language")
    code = _required(lang, "code", "template.language.")
    if not isinstance(code, str) or not code:
        raise invalid("template.language.code must be a non-empty string.")
    comps = c.get("components", [])
    if not isinstance(comps, list):
        raise param("Param template[components] must be an array.")
    out: dict[str, list[dict[str, Any]]] = {}
    for i, comp in enumerate(comps):
        comp = _obj(comp, f"template.components[{i}]")
        ctype = str(_required(comp, "type", f"template.components[{i}].")).lower()
        if ctype not in ("header", "body", "button", "footer"):
            raise invalid(f"Component type '{ctype[:20]}' is not valid.")
        key = ctype
        if ctype == "button":
            sub = _required(comp, "sub_type", f"template.components[{i}].")
            if str(sub).lower() not in BUTTON_SUB_TYPES:
                raise invalid(f"Button sub_type '{str(sub)[:20]}' is not valid.")
            index = _required(comp, "index", f"template.components[{i}].")
            try:
                key = f"button:{int(index)}"
            except (TypeError, ValueError):
                raise invalid("Button index must be a number.") from None
        params = comp.get("parameters", [])
        if not isinstance(params, list):
            raise param(f"Param template[components][{i}][parameters] must be an array.")
        for j, p in enumerate(params):
            _template_param(_obj(p, f"template.components[{i}].parameters[{j}]"), f"components[{i}].parameters[{j}]")
        if key in out:
            raise invalid(f"Component '{key}' appears more than once.")
        out[key] = params
    return out


def _template_param(p: dict[str, Any], where: str) -> None:
    ptype = _required(p, "type", f"{where}.")
    if not isinstance(ptype, str) or ptype not in TEMPLATE_PARAM_TYPES:
        raise invalid(f"Parameter type '{str(ptype)[:20]}' is not valid.")
    if "parameter_name" in p and not (isinstance(p["parameter_name"], str) and p["parameter_name"]):
        raise invalid("parameter_name must be a non-empty string.")
    if ptype not in p:
        raise missing(f"Parameter '{where}.{ptype}' is required.")
    value = p[ptype]
    if ptype in ("text", "payload", "coupon_code"):
        _length(value, f"Parameter {ptype}", 32768 if ptype == "text" else 128)
    elif ptype in ("image", "video", "document"):
        _media(value, ptype)
    elif ptype == "currency":
        cur = _obj(value, f"{where}.currency")
        for key in ("fallback_value", "code", "amount_1000"):
            _required(cur, key, f"{where}.currency.")
    elif ptype == "date_time":
        _required(_obj(value, f"{where}.date_time"), "fallback_value", f"{where}.date_time.")
    elif ptype == "location":
        _location(value)
    else:
        _obj(value, f"{where}.{ptype}")
