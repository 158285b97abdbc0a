"""The Cloud API adapter's receiving half: a webhook body → canonical events.

`parse_webhook(raw)` reads every message, status, template update, error and other field in
every entry and change of a (possibly batched) body and returns them as `ParsedEvent`s, each
with the key the inbox deduplicates on:

- inbound message: `msg:<wamid>`
- status: `st:<wamid>:<status>`
- template status update: `tpl:<template_id>:<event>:<entry time>`
- value-level errors and any other field: `err:` / `oth:<field>:` + a hash of the change

This is the hot path of the webhook endpoint, so it walks the JSON with plain dict access
(orjson) instead of validating the `waflow.cloudapi.webhook` models; every shape problem is a
`WebhookParseError` that names the place (`entry[0].changes[1].value.messages[2].id`) and what
is wrong. Nothing the provider sent is dropped: each event's stored payload is the canonical
event plus the wire object it came from under `"raw"`.

Partial bodies: Meta batches up to 1000 updates in one POST, so one malformed update must not
take its neighbours down with it. Each entry, change, message, status and value-level `errors`
array is judged alone; one that does not parse becomes a `RejectedFragment` (its place, the
problem, and a self-contained webhook body holding only that fragment and its context) and
everything valid beside it still becomes events. Only a body with no recognisable envelope (not
JSON, not an object, `object` not `whatsapp_business_account`, `entry` not an array) raises.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic import TypeAdapter

from waflow.canonical import (
    ContactRef,
    DeliveryStatus,
    ErrorDetail,
    EventKind,
    InboundMessage,
    StatusUpdate,
    TemplateStatusUpdate,
)

PROVIDER = "cloud"
_OBJECT = "whatsapp_business_account"
_STATUSES = {s.value: s for s in DeliveryStatus}
_MEDIA_WITH_CAPTION = frozenset({"image", "video", "document"})


class WebhookParseError(ValueError):
    """A webhook body that is not a Cloud API payload; the message names the place and the problem."""

    def __init__(self, where: str, problem: str) -> None:
        self.where = where
        self.problem = problem
        super().__init__(f"{where}: {problem}" if where else problem)


@dataclass(frozen=True, slots=True)
class ParsedEvent:
    """One canonical event with what the inbox needs to file it."""

    kind: EventKind
    dedup_key: str
    waba_id: str
    phone_number_id: str | None
    contact_key: str | None
    provider_message_id: str | None
    event: InboundMessage | StatusUpdate | TemplateStatusUpdate | None
    payload: dict[str, Any]  # JSON-ready: the canonical event's fields + "raw" wire object

    @property
    def provider(self) -> str:
        return PROVIDER


@dataclass(frozen=True, slots=True)
class ContactSeen:
    """A user who wrote in: upsert the contact (profile name, last inbound time)."""

    phone_number_id: str
    contact: ContactRef
    at: datetime


@dataclass(frozen=True, slots=True)
class RejectedFragment:
    """One update of a body that did not parse, to be kept as a dead letter on its own.

    `where` is the fragment's place (`entry[0].changes[1].value.messages[3]`), `problem` the
    parse error (which names the exact field, `...messages[3].type: missing`). `body` is a
    webhook body carrying only this fragment with its envelope (entry id and time, the change's
    field, the value's metadata and the sender's contact), so it can be read, and replayed once
    the parser knows the shape, without the rest of the batch. `body` is canonical JSON (sorted
    keys), so the same fragment redelivered gives the same bytes.
    """

    where: str
    problem: str
    body: bytes
    waba_id: str | None
    phone_number_id: str | None


@dataclass(slots=True)
class ParsedWebhook:
    events: list[ParsedEvent] = field(default_factory=list)
    contacts: list[ContactSeen] = field(default_factory=list)
    phone_number_ids: set[str] = field(default_factory=set)
    waba_ids: set[str] = field(default_factory=set)
    rejected: list[RejectedFragment] = field(default_factory=list)


# -- helpers --------------------------------------------------------------------------------


def _obj(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise WebhookParseError(where, f"expected an object, got {_kind_of(value)}")
    return value


def _list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise WebhookParseError(where, f"expected an array, got {_kind_of(value)}")
    return value


def _str(obj: Mapping[str, Any], key: str, where: str) -> str:
    value = obj.get(key)
    if isinstance(value, str) and value:
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if value is None:
        raise WebhookParseError(f"{where}.{key}", "missing")
    raise WebhookParseError(f"{where}.{key}", f"expected a non-empty string, got {_kind_of(value)}")


def _opt_str(obj: Mapping[str, Any], key: str) -> str | None:
    value = obj.get(key)
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


def _kind_of(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


_TS_CACHE: dict[str, datetime] = {}
_TS_ADAPTER: TypeAdapter[datetime] = TypeAdapter(datetime)


def _timestamp(obj: Mapping[str, Any], key: str, where: str) -> datetime:
    value = obj.get(key)
    if isinstance(value, str):
        cached = _TS_CACHE.get(value)
        if cached is not None:
            return cached
        try:
            seconds = int(value)
        except ValueError:
            raise WebhookParseError(f"{where}.{key}", f"expected unix seconds, got {value[:40]!r}") from None
    elif isinstance(value, int) and not isinstance(value, bool):
        seconds = value
    elif value is None:
        raise WebhookParseError(f"{where}.{key}", "missing")
    else:
        raise WebhookParseError(f"{where}.{key}", f"expected unix seconds, got {_kind_of(value)}")
    try:
        at = datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError):
        raise WebhookParseError(f"{where}.{key}", f"unix seconds out of range: {seconds}") from None
    if isinstance(value, str):
        if len(_TS_CACHE) > 4096:
            _TS_CACHE.clear()
        _TS_CACHE[value] = at
    return at


_ISO_CACHE: dict[datetime, str] = {}


def _iso(at: datetime) -> str:
    """`at` as pydantic's JSON mode writes a UTC datetime (`2025-10-09T08:54:11Z`), cached."""
    text = _ISO_CACHE.get(at)
    if text is None:
        if len(_ISO_CACHE) > 4096:
            _ISO_CACHE.clear()
        text = _ISO_CACHE[at] = _TS_ADAPTER.dump_python(at, mode="json")
    return text


def _errors(value: Any, where: str) -> list[ErrorDetail]:
    if value is None:
        return []
    out: list[ErrorDetail] = []
    for i, item in enumerate(_list(value, where)):
        err = _obj(item, f"{where}[{i}]")
        code = err.get("code")
        if not isinstance(code, int) or isinstance(code, bool):
            raise WebhookParseError(f"{where}[{i}].code", f"expected an integer, got {_kind_of(code)}")
        extra = {k: v for k, v in err.items() if k not in ("code", "title", "message", "details")}
        out.append(
            ErrorDetail(
                code=code,
                title=err.get("title") or "",
                message=err.get("message") or "",
                details=error_details(err),
                **extra,
            )
        )
    return out


def error_details(err: Mapping[str, Any]) -> str:
    """An `errors[]` item's details: newer payloads put them under `error_data.details`, older
    ones at the item's top level (`details`); the first non-empty string wins, else ""."""
    data = err.get("error_data")
    nested = data.get("details") if isinstance(data, dict) else None
    if isinstance(nested, str) and nested:
        return nested
    top = err.get("details")
    return top if isinstance(top, str) else ""


def _hash(*parts: Any) -> str:
    try:
        text = orjson.dumps(parts, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # nested deeper than orjson writes (254 levels): the standard library goes further
        try:
            text = json.dumps(parts, sort_keys=True, separators=(",", ":")).encode()
        except RecursionError:
            # a parse problem of the change being read (~1000 levels), not a crash of the endpoint
            raise WebhookParseError("", "nested too deeply to identify (about 1000 levels)") from None
    return hashlib.sha256(text).hexdigest()[:32]


# -- text / payload per message type ----------------------------------------------------------


def _text_and_payload(mtype: str, content: Any) -> tuple[str | None, str | None]:
    if not isinstance(content, dict):
        return None, None
    if mtype == "text":
        return _opt_str(content, "body"), None
    if mtype in _MEDIA_WITH_CAPTION:
        return _opt_str(content, "caption"), None
    if mtype == "interactive":
        itype = content.get("type")
        reply = content.get(itype) if isinstance(itype, str) else None
        if not isinstance(reply, dict):
            return None, None
        if itype == "nfm_reply":
            return _opt_str(reply, "body"), _opt_str(reply, "response_json")
        return _opt_str(reply, "title"), _opt_str(reply, "id")
    if mtype == "button":
        return _opt_str(content, "text"), _opt_str(content, "payload")
    if mtype == "reaction":
        return _opt_str(content, "emoji"), None
    if mtype == "location":
        return _opt_str(content, "name") or _opt_str(content, "address"), None
    if mtype in ("order", "system"):
        return _opt_str(content, "text" if mtype == "order" else "body"), None
    return _opt_str(content, "body") or _opt_str(content, "text"), None


# -- per field ----------------------------------------------------------------------------------


def _find_contact(contacts: list[dict[str, Any]], wa_id: str | None, user_id: str | None) -> dict[str, Any] | None:
    for c in contacts:
        if (wa_id and c.get("wa_id") == wa_id) or (user_id and c.get("user_id") == user_id):
            return c
    return contacts[0] if len(contacts) == 1 else None


def _parse_message(
    msg_any: Any, where: str, waba_id: str, pnid: str, contacts: list[dict[str, Any]], out: ParsedWebhook
) -> None:
    msg = _obj(msg_any, where)
    wamid = _str(msg, "id", where)
    mtype = _str(msg, "type", where)
    at = _timestamp(msg, "timestamp", where)
    wa_id = _opt_str(msg, "from")
    user_id = _opt_str(msg, "from_user_id")
    found = _find_contact(contacts, wa_id, user_id)
    profile_name: str | None = None
    if found is not None:
        wa_id = wa_id or _opt_str(found, "wa_id")
        user_id = user_id or _opt_str(found, "user_id")
        profile = found.get("profile")
        if isinstance(profile, dict):
            profile_name = _opt_str(profile, "name")
    if not wa_id and not user_id:
        raise WebhookParseError(f"{where}.from", "missing: a message needs `from` or `from_user_id`")
    contact = ContactRef(wa_id=wa_id, user_id=user_id, profile_name=profile_name)

    raw_content = msg.get(mtype)
    if isinstance(raw_content, dict):
        content: dict[str, Any] = raw_content
    elif raw_content is None:
        content = {}
    else:
        content = {mtype: raw_content}  # e.g. `contacts` is an array
    text, payload = _text_and_payload(mtype, raw_content)

    ctx = msg.get("context")
    context_id = _opt_str(ctx, "id") if isinstance(ctx, dict) else None
    if context_id is None and mtype == "reaction" and isinstance(raw_content, dict):
        context_id = _opt_str(raw_content, "message_id")
    referral = msg.get("referral")
    event = InboundMessage(
        provider=PROVIDER,
        phone_number_id=pnid,
        message_id=wamid,
        contact=contact,
        timestamp=at,
        type=mtype,
        text=text,
        payload=payload,
        context_message_id=context_id,
        referral=referral if isinstance(referral, dict) else None,
        content=content,
        errors=_errors(msg.get("errors"), f"{where}.errors"),
    )
    data = event.model_dump(mode="json")
    data["raw"] = msg
    out.events.append(ParsedEvent(EventKind.MESSAGE, f"msg:{wamid}", waba_id, pnid, contact.key, wamid, event, data))
    out.contacts.append(ContactSeen(pnid, contact, at))


def _parse_status(st_any: Any, where: str, waba_id: str, pnid: str, out: ParsedWebhook) -> None:
    st = _obj(st_any, where)
    wamid = _str(st, "id", where)
    status_text = _str(st, "status", where)
    at = _timestamp(st, "timestamp", where)
    recipient = _opt_str(st, "recipient_id") or _opt_str(st, "recipient_user_id")
    status = _STATUSES.get(status_text)
    if status is None or status in (DeliveryStatus.QUEUED, DeliveryStatus.ACCEPTED):
        # A status waflow has no canonical meaning for (Meta adds some): kept whole, not applied.
        other: dict[str, Any] = {"field": "messages", "waba_id": waba_id, "phone_number_id": pnid, "raw": st}
        out.events.append(
            ParsedEvent(EventKind.OTHER, f"st:{wamid}:{status_text}", waba_id, pnid, recipient, wamid, None, other)
        )
        return
    conversation = st.get("conversation")
    pricing = st.get("pricing")
    callback_data = _opt_str(st, "biz_opaque_callback_data")
    errors = _errors(st.get("errors"), f"{where}.errors")
    conversation = conversation if isinstance(conversation, dict) else None
    pricing = pricing if isinstance(pricing, dict) else None
    # Statuses are most of the webhook traffic. Every field was checked above, so the event is
    # built without re-validation and its JSON form by hand (pydantic's __init__ + model_dump
    # were ~25% of the endpoint's CPU); tests/providers pin that this equals
    # `model_dump(mode="json")`.
    event = StatusUpdate.model_construct(
        provider=PROVIDER,
        phone_number_id=pnid,
        message_id=wamid,
        status=status,
        timestamp=at,
        recipient_id=recipient,
        callback_data=callback_data,
        errors=errors,
        conversation=conversation,
        pricing=pricing,
    )
    data: dict[str, Any] = {
        "provider": PROVIDER,
        "phone_number_id": pnid,
        "message_id": wamid,
        "status": status.value,
        "timestamp": _iso(at),
        "recipient_id": recipient,
        "callback_data": callback_data,
        "errors": [e.model_dump(mode="json") for e in errors],
        "conversation": conversation,
        "pricing": pricing,
        "raw": st,
    }
    out.events.append(
        ParsedEvent(EventKind.STATUS, f"st:{wamid}:{status_text}", waba_id, pnid, recipient, wamid, event, data)
    )


# What a `messages` value holds per update; a fragment's body keeps the rest of the value
# (metadata, messaging_product, fields Meta adds) and only its own update.
_VALUE_UPDATES = ("messages", "statuses", "errors", "contacts")

# Builds the whole-body document around a reduced `value` (see `RejectedFragment.body`).
Wrap = Callable[[dict[str, Any]], dict[str, Any]]


def _value_with(value: dict[str, Any], key: str, item: Any, contacts: list[dict[str, Any]]) -> dict[str, Any]:
    """`value` reduced to one update: the message / status (or the `errors` array) at `key`."""
    reduced = {k: v for k, v in value.items() if k not in _VALUE_UPDATES}
    if key == "messages" and isinstance(item, dict):
        # only the sender's contact: a batch of 1000 messages carries 1000 contacts
        wa_id, user_id = _opt_str(item, "from"), _opt_str(item, "from_user_id")
        mine = [c for c in contacts if (wa_id and c.get("wa_id") == wa_id) or (user_id and c.get("user_id") == user_id)]
        reduced["contacts"] = mine or contacts
    elif "contacts" in value:
        reduced["contacts"] = value["contacts"]
    reduced[key] = item if key == "errors" else [item]
    return reduced


def _parse_messages_value(value: dict[str, Any], where: str, waba_id: str, out: ParsedWebhook, wrap: Wrap) -> None:
    # Everything the change's updates share is checked first: a problem here rejects the change
    # as a whole (raised to the caller) before any of its updates became an event.
    metadata = _obj(value.get("metadata"), f"{where}.metadata")
    pnid = _str(metadata, "phone_number_id", f"{where}.metadata")
    out.phone_number_ids.add(pnid)
    contacts_raw = value.get("contacts")
    contacts: list[dict[str, Any]] = []
    if contacts_raw is not None:
        for i, c in enumerate(_list(contacts_raw, f"{where}.contacts")):
            contacts.append(_obj(c, f"{where}.contacts[{i}]"))
    messages = value.get("messages")
    statuses = value.get("statuses")
    message_list = _list(messages, f"{where}.messages") if messages is not None else []
    status_list = _list(statuses, f"{where}.statuses") if statuses is not None else []
    # then each update alone: one that does not parse is rejected, its neighbours still count
    for i, msg in enumerate(message_list):
        mw = f"{where}.messages[{i}]"
        try:
            _parse_message(msg, mw, waba_id, pnid, contacts, out)
        except WebhookParseError as exc:
            _reject(out, mw, exc, wrap(_value_with(value, "messages", msg, contacts)), waba_id, pnid)
    for i, st in enumerate(status_list):
        sw = f"{where}.statuses[{i}]"
        try:
            _parse_status(st, sw, waba_id, pnid, out)
        except WebhookParseError as exc:
            _reject(out, sw, exc, wrap(_value_with(value, "statuses", st, contacts)), waba_id, pnid)
    errors = value.get("errors")
    if errors is not None:
        try:
            details = _errors(errors, f"{where}.errors")
        except WebhookParseError as exc:
            _reject(out, f"{where}.errors", exc, wrap(_value_with(value, "errors", errors, contacts)), waba_id, pnid)
        else:
            data = {
                "waba_id": waba_id,
                "phone_number_id": pnid,
                "errors": [d.model_dump(mode="json") for d in details],
                "raw": value,
            }
            out.events.append(
                ParsedEvent(EventKind.ERROR, f"err:{_hash(waba_id, value)}", waba_id, pnid, None, None, None, data)
            )
    if messages is None and statuses is None and errors is None:
        _other("messages", value, waba_id, pnid, None, out)


def _parse_template_status(
    value: dict[str, Any], where: str, waba_id: str, entry_time: int | None, out: ParsedWebhook
) -> None:
    template_id = _str(value, "message_template_id", where)
    event_name = _str(value, "event", where)
    reason = _opt_str(value, "reason")
    event = TemplateStatusUpdate(
        provider=PROVIDER,
        waba_id=waba_id,
        template_id=template_id,
        name=_opt_str(value, "message_template_name") or "",
        language=_opt_str(value, "message_template_language") or "",
        event=event_name,
        reason=reason,
        timestamp=datetime.fromtimestamp(entry_time, tz=UTC) if entry_time is not None else None,
    )
    data = event.model_dump(mode="json")
    data["raw"] = value
    suffix = str(entry_time) if entry_time is not None else _hash(value)
    key = f"tpl:{template_id}:{event_name}:{suffix}"
    out.events.append(ParsedEvent(EventKind.TEMPLATE_STATUS, key, waba_id, None, None, None, event, data))


def _other(
    field_name: str, value: Any, waba_id: str, pnid: str | None, entry_time: int | None, out: ParsedWebhook
) -> None:
    data = {"field": field_name, "waba_id": waba_id, "time": entry_time, "raw": value}
    key = f"oth:{field_name}:{_hash(waba_id, field_name, entry_time, value)}"
    out.events.append(ParsedEvent(EventKind.OTHER, key, waba_id, pnid, None, None, None, data))


class _UnkeepableError(Exception):
    """A rejected fragment too deeply nested to serialise apart from its body."""


def _dump(doc: Any) -> bytes | None:
    """Canonical JSON (sorted keys) of a fragment's body, or None if it cannot be written: orjson
    writes at most 254 levels while it reads up to 1024; the standard library goes deeper."""
    try:
        return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        pass
    try:
        return json.dumps(doc, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()
    except (RecursionError, TypeError, ValueError):
        return None


def _reject(
    out: ParsedWebhook, where: str, exc: WebhookParseError, doc: Any, waba_id: str | None, pnid: str | None
) -> None:
    body = _dump(doc)
    if body is None:
        raise _UnkeepableError(where)
    out.rejected.append(RejectedFragment(where, str(exc), body, waba_id, pnid))
    # the ids a rejected fragment names still decide which app may send the body (`app_serves`)
    if waba_id:
        out.waba_ids.add(waba_id)
    if pnid:
        out.phone_number_ids.add(pnid)


def _hinted_pnid(value: Any) -> str | None:
    """The phone_number_id a (possibly broken) value names, for filing its dead letter."""
    if isinstance(value, dict) and isinstance(value.get("metadata"), dict):
        return _opt_str(value["metadata"], "phone_number_id") or None
    return None


def _parse_change(
    change_any: Any, cw: str, waba_id: str, entry_time: int | None, out: ParsedWebhook, wrap_change: Wrap
) -> None:
    change = _obj(change_any, cw)
    field_name = _str(change, "field", cw)
    value = change.get("value")

    def wrap(reduced: dict[str, Any]) -> dict[str, Any]:
        return wrap_change({**change, "value": reduced})

    if field_name == "messages":
        _parse_messages_value(_obj(value, f"{cw}.value"), f"{cw}.value", waba_id, out, wrap)
    elif field_name == "message_template_status_update":
        _parse_template_status(_obj(value, f"{cw}.value"), f"{cw}.value", waba_id, entry_time, out)
    else:
        pnid = _hinted_pnid(value)
        if pnid:
            out.phone_number_ids.add(pnid)
        _other(field_name, value, waba_id, pnid, entry_time, out)


def _parse_entry(entry_any: Any, ew: str, out: ParsedWebhook) -> None:
    entry = _obj(entry_any, ew)
    waba_id = _str(entry, "id", ew)
    changes = _list(entry.get("changes"), f"{ew}.changes")
    out.waba_ids.add(waba_id)
    time_any = entry.get("time")
    entry_time = time_any if isinstance(time_any, int) and not isinstance(time_any, bool) else None
    shell = {k: v for k, v in entry.items() if k != "changes"}

    def wrap_change(change: Any) -> dict[str, Any]:
        return {"object": _OBJECT, "entry": [{**shell, "changes": [change]}]}

    for c_i, change_any in enumerate(changes):
        cw = f"{ew}.changes[{c_i}]"
        try:
            _parse_change(change_any, cw, waba_id, entry_time, out, wrap_change)
        except WebhookParseError as exc:
            # raised only before any of the change's updates became an event (they are checked
            # one by one after what they share), so nothing of it is both an event and rejected
            value = change_any.get("value") if isinstance(change_any, dict) else None
            _reject(out, cw, exc, wrap_change(change_any), waba_id, _hinted_pnid(value))


def parse_document(doc: Any) -> ParsedWebhook:
    """Canonical events of an already-decoded webhook body (see `parse_webhook`)."""
    body = _obj(doc, "body")
    obj = body.get("object")
    if obj != _OBJECT:
        raise WebhookParseError("object", f"expected {_OBJECT!r}, got {obj!r:.60}")
    out = ParsedWebhook()
    entries = _list(body.get("entry"), "entry")
    try:
        for e_i, entry_any in enumerate(entries):
            ew = f"entry[{e_i}]"
            try:
                _parse_entry(entry_any, ew, out)
            except WebhookParseError as exc:
                waba = _opt_str(entry_any, "id") if isinstance(entry_any, dict) else None
                _reject(out, ew, exc, {"object": _OBJECT, "entry": [entry_any]}, waba or None, None)
    except _UnkeepableError as exc:
        # rare enough that the whole body is kept raw rather than this fragment being lost
        raise WebhookParseError(
            str(exc.args[0]), "does not parse and is nested too deeply to keep apart from the body"
        ) from None
    return out


def parse_webhook(raw: bytes) -> ParsedWebhook:
    """Every event of a Cloud API webhook body, in order; `WebhookParseError` if it is not one."""
    if not raw:
        raise WebhookParseError("body", "empty")
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise WebhookParseError("body", f"not valid JSON ({exc})") from None
    return parse_document(doc)


__all__ = [
    "PROVIDER",
    "ContactSeen",
    "ParsedEvent",
    "ParsedWebhook",
    "RejectedFragment",
    "WebhookParseError",
    "error_details",
    "parse_document",
    "parse_webhook",
]
