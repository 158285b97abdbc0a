"""The platform's documented limits, checked locally before any HTTP call.

Checks run on the wire dict (what would be POSTed), so typed models and the outbox's plain
`OutboundMessage` content go through the same code, and errors name wire paths:
`interactive.action.buttons[1].reply.title: 23 characters, at most 20`.

Only limits Meta documents (reference §2) are enforced; anything else is left to Graph so a
newer platform feature is not refused by an older client.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Final

from waflow.cloudapi.exceptions import MessageValidationError

TEXT_BODY_MAX: Final = 4096
CAPTION_MAX: Final = 1024
INTERACTIVE_BODY_MAX: Final = 1024
LIST_BODY_MAX: Final = 4096
HEADER_TEXT_MAX: Final = 60
FOOTER_MAX: Final = 60
BUTTONS_MAX: Final = 3
BUTTON_TITLE_MAX: Final = 20
BUTTON_ID_MAX: Final = 256
LIST_BUTTON_MAX: Final = 20
LIST_SECTIONS_MAX: Final = 10
LIST_ROWS_MAX: Final = 10
SECTION_TITLE_MAX: Final = 24
ROW_ID_MAX: Final = 200
ROW_TITLE_MAX: Final = 24
ROW_DESCRIPTION_MAX: Final = 72
CTA_DISPLAY_TEXT_MAX: Final = 20
CALLBACK_DATA_MAX: Final = 512
TEMPLATE_NAME_MAX: Final = 512

MESSAGE_TYPES: Final = frozenset(
    {"text", "image", "audio", "video", "document", "sticker", "location", "contacts", "interactive", "template",
     "reaction"}
)
_CAPTIONED: Final = frozenset({"image", "video", "document"})
_MEDIA_KEYS: Final = {
    "image": frozenset({"id", "link", "caption"}),
    "video": frozenset({"id", "link", "caption"}),
    "document": frozenset({"id", "link", "caption", "filename"}),
    "audio": frozenset({"id", "link", "voice"}),
    "sticker": frozenset({"id", "link"}),
}
# Which header types each interactive type accepts (None: no header allowed).
_HEADER_TYPES: Final[dict[str, frozenset[str] | None]] = {
    "button": frozenset({"text", "image", "video", "document"}),
    "list": frozenset({"text"}),
    "cta_url": frozenset({"text", "image", "video", "document"}),
    "location_request_message": None,
    "flow": frozenset({"text", "image", "video", "document"}),
    "product": None,
    "product_list": frozenset({"text"}),
    "catalog_message": None,
}
# Interactive types whose body is optional.
_BODY_OPTIONAL: Final = frozenset({"product"})


def _fail(path: str, problem: str) -> MessageValidationError:
    return MessageValidationError(path, problem)


def _obj(value: Any, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _fail(path, f"must be an object, got {_kind(value)}")
    return value


def _list(value: Any, path: str) -> Sequence[Any]:
    if not isinstance(value, list | tuple):
        raise _fail(path, f"must be a list, got {_kind(value)}")
    return value


def _kind(value: Any) -> str:
    return "nothing" if value is None else type(value).__name__


def _str(obj: Mapping[str, Any], key: str, path: str, *, max_len: int | None = None, required: bool = True,
         allow_empty: bool = False) -> str | None:
    value = obj.get(key)
    where = f"{path}.{key}" if path else key
    if value is None:
        if required:
            raise _fail(where, "required")
        return None
    if not isinstance(value, str):
        raise _fail(where, f"must be a string, got {_kind(value)}")
    if not value and not allow_empty:
        raise _fail(where, "must not be empty")
    if max_len is not None and len(value) > max_len:
        raise _fail(where, f"{len(value)} characters, at most {max_len}")
    return value


def _count(items: Sequence[Any], path: str, lo: int, hi: int, what: str) -> None:
    n = len(items)
    if n < lo or n > hi:
        bound = f"exactly {lo}" if lo == hi else f"{lo} to {hi}"
        raise _fail(path, f"{n} {what}, must be {bound}")


def _https_url(obj: Mapping[str, Any], key: str, path: str, *, https_only: bool) -> None:
    url = _str(obj, key, path)
    assert url is not None
    ok = url.startswith("https://") or (not https_only and url.startswith("http://"))
    if not ok or len(url) <= len("https://"):
        scheme = "an https://" if https_only else "an http(s)://"
        raise _fail(f"{path}.{key}", f"must be {scheme} URL")


def _media(obj: Any, path: str, allowed: frozenset[str] | None = None) -> None:
    media = _obj(obj, path)
    has_id, has_link = media.get("id") is not None, media.get("link") is not None
    if has_id == has_link:
        raise _fail(path, "needs exactly one of id (uploaded media) or link (URL)")
    if has_id:
        _str(media, "id", path)
    else:
        _https_url(media, "link", path, https_only=False)
    if allowed is not None:
        extra = sorted(set(media) - allowed)
        if extra:
            raise _fail(f"{path}.{extra[0]}", "not allowed for this media type")


# -- per type ---------------------------------------------------------------------------------


def _text(content: Any, path: str) -> None:
    obj = _obj(content, path)
    _str(obj, "body", path, max_len=TEXT_BODY_MAX)
    preview = obj.get("preview_url")
    if preview is not None and not isinstance(preview, bool):
        raise _fail(f"{path}.preview_url", "must be true or false")


def _media_message(type_: str, content: Any, path: str) -> None:
    _media(content, path, _MEDIA_KEYS[type_])
    obj = _obj(content, path)
    if type_ in _CAPTIONED:
        _str(obj, "caption", path, max_len=CAPTION_MAX, required=False, allow_empty=True)
    if type_ == "document":
        _str(obj, "filename", path, max_len=240, required=False)
    if type_ == "audio" and obj.get("voice") is not None and not isinstance(obj.get("voice"), bool):
        raise _fail(f"{path}.voice", "must be true or false")


def _coordinate(obj: Mapping[str, Any], key: str, path: str, bound: float) -> None:
    value = obj.get(key)
    where = f"{path}.{key}"
    if value is None:
        raise _fail(where, "required")
    try:
        number = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        number = math.nan
    if math.isnan(number):
        raise _fail(where, f"must be a number, got {value!r}")
    if not -bound <= number <= bound:
        raise _fail(where, f"{number} is out of range, must be between {-bound:g} and {bound:g}")


def _location(content: Any, path: str) -> None:
    obj = _obj(content, path)
    _coordinate(obj, "latitude", path, 90.0)
    _coordinate(obj, "longitude", path, 180.0)
    _str(obj, "name", path, required=False, max_len=1000)
    _str(obj, "address", path, required=False, max_len=1000)


def _contacts(content: Any, path: str) -> None:
    items = _list(content, path)
    if not items:
        raise _fail(path, "needs at least one contact")
    for i, item in enumerate(items):
        where = f"{path}[{i}]"
        contact = _obj(item, where)
        name = _obj(contact.get("name"), f"{where}.name")
        _str(name, "formatted_name", f"{where}.name")


def _reaction(content: Any, path: str) -> None:
    obj = _obj(content, path)
    _str(obj, "message_id", path)
    _str(obj, "emoji", path, required=True, allow_empty=True)


def _header(obj: Mapping[str, Any], itype: str, path: str) -> None:
    header = obj.get("header")
    if header is None:
        if itype == "product_list":
            raise _fail(f"{path}.header", "required for product_list")
        return
    allowed = _HEADER_TYPES.get(itype, frozenset({"text", "image", "video", "document"}))
    where = f"{path}.header"
    if allowed is None:
        raise _fail(where, f"not allowed for interactive type {itype}")
    h = _obj(header, where)
    htype = _str(h, "type", where)
    if htype not in allowed:
        raise _fail(f"{where}.type", f"{htype!r} is not allowed for {itype}, use one of {sorted(allowed)}")
    if htype == "text":
        _str(h, "text", where, max_len=HEADER_TEXT_MAX)
    else:
        _media(h.get(htype), f"{where}.{htype}")


def _reply_buttons(action: Mapping[str, Any], path: str) -> None:
    where = f"{path}.buttons"
    buttons = _list(action.get("buttons"), where)
    _count(buttons, where, 1, BUTTONS_MAX, "buttons")
    ids: set[str] = set()
    titles: set[str] = set()
    for i, item in enumerate(buttons):
        bpath = f"{where}[{i}]"
        button = _obj(item, bpath)
        if button.get("type", "reply") != "reply":
            raise _fail(f"{bpath}.type", "must be 'reply'")
        reply = _obj(button.get("reply"), f"{bpath}.reply")
        bid = _str(reply, "id", f"{bpath}.reply", max_len=BUTTON_ID_MAX)
        title = _str(reply, "title", f"{bpath}.reply", max_len=BUTTON_TITLE_MAX)
        if bid in ids:
            raise _fail(f"{bpath}.reply.id", f"{bid!r} is used by another button, ids must be unique")
        if title in titles:
            raise _fail(f"{bpath}.reply.title", f"{title!r} is used by another button, titles must be unique")
        ids.add(bid or "")
        titles.add(title or "")


def _list_action(action: Mapping[str, Any], path: str) -> None:
    _str(action, "button", path, max_len=LIST_BUTTON_MAX)
    where = f"{path}.sections"
    sections = _list(action.get("sections"), where)
    _count(sections, where, 1, LIST_SECTIONS_MAX, "sections")
    total = 0
    row_ids: set[str] = set()
    for s, item in enumerate(sections):
        spath = f"{where}[{s}]"
        section = _obj(item, spath)
        _str(section, "title", spath, max_len=SECTION_TITLE_MAX, required=len(sections) > 1)
        rows = _list(section.get("rows"), f"{spath}.rows")
        if not rows:
            raise _fail(f"{spath}.rows", "needs at least one row")
        for r, row_item in enumerate(rows):
            rpath = f"{spath}.rows[{r}]"
            row = _obj(row_item, rpath)
            rid = _str(row, "id", rpath, max_len=ROW_ID_MAX)
            _str(row, "title", rpath, max_len=ROW_TITLE_MAX)
            _str(row, "description", rpath, max_len=ROW_DESCRIPTION_MAX, required=False, allow_empty=True)
            if rid in row_ids:
                raise _fail(f"{rpath}.id", f"{rid!r} is used by another row, row ids must be unique")
            row_ids.add(rid or "")
        total += len(rows)
        if total > LIST_ROWS_MAX:
            raise _fail(where, f"more than {LIST_ROWS_MAX} rows in total, at most {LIST_ROWS_MAX}")


def _named_action(action: Mapping[str, Any], path: str, name: str) -> Mapping[str, Any] | None:
    got = action.get("name")
    if got != name:
        raise _fail(f"{path}.name", f"must be {name!r}, got {got!r}")
    params = action.get("parameters")
    return _obj(params, f"{path}.parameters") if params is not None else None


def _interactive(content: Any, path: str) -> None:
    obj = _obj(content, path)
    itype = _str(obj, "type", path)
    assert itype is not None
    _header(obj, itype, path)
    body_max = LIST_BODY_MAX if itype == "list" else INTERACTIVE_BODY_MAX
    body = obj.get("body")
    if body is None:
        if itype not in _BODY_OPTIONAL:
            raise _fail(f"{path}.body", "required")
    else:
        _str(_obj(body, f"{path}.body"), "text", f"{path}.body", max_len=body_max)
    footer = obj.get("footer")
    if footer is not None:
        _str(_obj(footer, f"{path}.footer"), "text", f"{path}.footer", max_len=FOOTER_MAX)
    apath = f"{path}.action"
    action = _obj(obj.get("action"), apath)
    if itype == "button":
        _reply_buttons(action, apath)
    elif itype == "list":
        _list_action(action, apath)
    elif itype == "cta_url":
        params = _named_action(action, apath, "cta_url")
        ppath = f"{apath}.parameters"
        if params is None:
            raise _fail(ppath, "required")
        _str(params, "display_text", ppath, max_len=CTA_DISPLAY_TEXT_MAX)
        _https_url(params, "url", ppath, https_only=True)
    elif itype == "location_request_message":
        _named_action(action, apath, "send_location")


_TEMPLATE_PARAM_VALUE: Final = {
    "text": "text", "currency": "currency", "date_time": "date_time", "image": "image", "video": "video",
    "document": "document", "location": "location", "payload": "payload", "coupon_code": "coupon_code",
    "action": "action",
}
_TEMPLATE_COMPONENTS: Final = frozenset({"header", "body", "button", "carousel", "limited_time_offer"})


def _template_parameter(param: Mapping[str, Any], path: str, component: str) -> None:
    ptype = _str(param, "type", path)
    if ptype not in _TEMPLATE_PARAM_VALUE:
        raise _fail(f"{path}.type", f"unknown parameter type {ptype!r}")
    key = _TEMPLATE_PARAM_VALUE[ptype]
    if param.get(key) is None:
        raise _fail(f"{path}.{key}", f"required for a {ptype} parameter")
    if ptype == "text":
        limit = HEADER_TEXT_MAX if component == "header" else 32768
        _str(param, "text", path, max_len=limit, allow_empty=False)
    elif ptype in ("image", "video", "document"):
        _media(param.get(ptype), f"{path}.{ptype}")
    elif ptype == "currency":
        cur = _obj(param.get("currency"), f"{path}.currency")
        _str(cur, "fallback_value", f"{path}.currency")
        _str(cur, "code", f"{path}.currency", max_len=3)
        amount = cur.get("amount_1000")
        if not isinstance(amount, int) or isinstance(amount, bool):
            raise _fail(f"{path}.currency.amount_1000", "must be an integer (amount × 1000)")
    elif ptype == "date_time":
        _str(_obj(param.get("date_time"), f"{path}.date_time"), "fallback_value", f"{path}.date_time")
    elif ptype == "location":
        _location(param.get("location"), f"{path}.location")
    elif ptype in ("payload", "coupon_code"):
        _str(param, ptype, path, max_len=CAPTION_MAX if ptype == "payload" else 15)


def _template(content: Any, path: str) -> None:
    obj = _obj(content, path)
    _str(obj, "name", path, max_len=TEMPLATE_NAME_MAX)
    lang = _obj(obj.get("language"), f"{path}.language")
    _str(lang, "code", f"{path}.language")
    components = obj.get("components")
    if components is None:
        return
    cpath = f"{path}.components"
    button_indexes: set[str] = set()
    for c, item in enumerate(_list(components, cpath)):
        where = f"{cpath}[{c}]"
        comp = _obj(item, where)
        ctype = _str(comp, "type", where)
        if ctype not in _TEMPLATE_COMPONENTS:
            raise _fail(f"{where}.type", f"unknown component type {ctype!r}")
        if ctype == "button":
            _str(comp, "sub_type", where)
            index = comp.get("index")
            if index is None:
                raise _fail(f"{where}.index", "required for a button component")
            if str(index) in button_indexes:
                raise _fail(f"{where}.index", f"button index {index} appears twice")
            button_indexes.add(str(index))
        params = comp.get("parameters")
        if params is None:
            continue
        named = 0
        plist = _list(params, f"{where}.parameters")
        for p, param_item in enumerate(plist):
            ppath = f"{where}.parameters[{p}]"
            param = _obj(param_item, ppath)
            _template_parameter(param, ppath, ctype or "")
            if param.get("parameter_name") is not None:
                named += 1
        if 0 < named < len(plist):
            raise _fail(f"{where}.parameters", "mixes named (parameter_name) and positional parameters")


_VALIDATORS: Final = {
    "text": _text,
    "location": _location,
    "contacts": _contacts,
    "reaction": _reaction,
    "interactive": _interactive,
    "template": _template,
}


def validate_content(type_: str, content: Any, path: str | None = None) -> None:
    """Check one message's `<type>` object against the platform's limits."""
    where = path if path is not None else type_
    if type_ in _MEDIA_KEYS:
        _media_message(type_, content, where)
        return
    check = _VALIDATORS.get(type_)
    if check is None:
        raise _fail("type", f"unknown message type {type_!r}, use one of {sorted(MESSAGE_TYPES)}")
    check(content, where)


def validate_payload(payload: Mapping[str, Any]) -> None:
    """Check a whole `POST /messages` body (a send) before it goes out."""
    if payload.get("messaging_product", "whatsapp") != "whatsapp":
        raise _fail("messaging_product", "must be 'whatsapp'")
    to, recipient = payload.get("to"), payload.get("recipient")
    if (to is None) == (recipient is None):
        raise _fail("to", "give exactly one of to (phone number) or recipient (business-scoped user id)")
    if to is not None:
        _recipient(to, "to")
    else:
        _recipient(recipient, "recipient")
    _str(payload, "biz_opaque_callback_data", "", max_len=CALLBACK_DATA_MAX, required=False)
    type_ = payload.get("type")
    if not isinstance(type_, str):
        raise _fail("type", "required")
    context = payload.get("context")
    if context is not None:
        if type_ == "reaction":
            raise _fail("context", "a reaction cannot quote a message")
        _str(_obj(context, "context"), "message_id", "context")
    if type_ not in payload:
        raise _fail(type_, "required" if type_ in MESSAGE_TYPES else f"unknown message type {type_!r}")
    validate_content(type_, payload[type_])


def _recipient(value: Any, key: str) -> None:
    if not isinstance(value, str) or not value.strip():
        raise _fail(key, "must be a non-empty string")
    if key == "to" and len(value) > 64:
        raise _fail(key, f"{len(value)} characters, at most 64")


def validate_mark_read(payload: Mapping[str, Any]) -> None:
    """Check a mark-as-read / typing-indicator body."""
    _str(payload, "message_id", "")
    typing = payload.get("typing_indicator")
    if typing is not None and _obj(typing, "typing_indicator").get("type") != "text":
        raise _fail("typing_indicator.type", "must be 'text'")
