"""parse_webhook: every Cloud API payload type → canonical events with dedup keys."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from waflow.canonical import DeliveryStatus, EventKind, InboundMessage, StatusUpdate, TemplateStatusUpdate
from waflow.cloudapi.webhook import WebhookPayload
from waflow.providers.cloud import RejectedFragment, WebhookParseError, parse_webhook

from . import payloads as P


def one_message(doc: dict[str, Any]) -> InboundMessage:
    parsed = parse_webhook(P.wire(doc))
    assert len(parsed.events) == 1
    ev = parsed.events[0]
    assert ev.kind is EventKind.MESSAGE
    assert isinstance(ev.event, InboundMessage)
    return ev.event


def test_reference_text_example() -> None:
    parsed = parse_webhook(P.EXAMPLE_TEXT.encode())
    [ev] = parsed.events
    assert ev.dedup_key == "msg:wamid.HBgLMzQ2MDAxMTEyMjIVAgASGBQzQUI3RDFFNkIzQzFGMEE5RTc2RgA="
    assert ev.phone_number_id == P.PNID and ev.waba_id == P.WABA and ev.contact_key == "34600111222"
    msg = ev.event
    assert isinstance(msg, InboundMessage)
    assert msg.text == "Hola, ¿tenéis stock?"
    assert msg.content == {"body": "Hola, ¿tenéis stock?"}
    assert msg.contact.profile_name == "Ana Ruiz"
    assert msg.timestamp == datetime(2025, 10, 9, 8, 53, 20, tzinfo=UTC)
    assert [c.contact.key for c in parsed.contacts] == ["34600111222"]
    assert parsed.phone_number_ids == {P.PNID} and parsed.waba_ids == {P.WABA}
    # payload is the canonical event plus the wire object; it round-trips through the canonical model
    assert InboundMessage.model_validate(ev.payload) == msg
    assert ev.payload["raw"]["type"] == "text"


def test_reference_button_example() -> None:
    [ev] = parse_webhook(P.EXAMPLE_BUTTON.encode()).events
    assert isinstance(ev.event, InboundMessage)
    assert (ev.event.text, ev.event.payload) == ("Yes", "confirm-yes")
    assert ev.event.context_message_id == "wamid.HBgLMzQ2MDAxMTEyMjIVAgARGBI3RjEyQUI0QzlEMEUxRjIzNDUA"


def test_reference_status_examples() -> None:
    [ev] = parse_webhook(P.EXAMPLE_DELIVERED.encode()).events
    assert ev.kind is EventKind.STATUS
    assert ev.dedup_key == "st:wamid.HBgLMzQ2MDAxMTEyMjIVAgARGBI3RjEyQUI0QzlEMEUxRjIzNDUA:delivered"
    st = ev.event
    assert isinstance(st, StatusUpdate)
    assert st.status is DeliveryStatus.DELIVERED and st.callback_data == "order-42"
    assert st.pricing is not None and st.pricing["category"] == "utility"
    assert st.conversation is not None and st.conversation["origin"] == {"type": "utility"}
    [ev] = parse_webhook(P.EXAMPLE_FAILED.encode()).events
    assert isinstance(ev.event, StatusUpdate)
    assert ev.event.status is DeliveryStatus.FAILED
    [err] = ev.event.errors
    assert err.code == 131047 and err.title == "Re-engagement message"
    assert err.details.startswith("Message failed to send because more than 24 hours")
    assert err.model_extra is not None and err.model_extra["href"].startswith("https://")


@pytest.mark.parametrize(
    ("mtype", "obj", "text", "payload"),
    [
        ("text", {"body": "hola"}, "hola", None),
        ("image", {"id": "m1", "mime_type": "image/jpeg", "sha256": "x", "caption": "look"}, "look", None),
        ("video", {"id": "m2", "mime_type": "video/mp4", "sha256": "x"}, None, None),
        ("audio", {"id": "m3", "mime_type": "audio/ogg; codecs=opus", "sha256": "x", "voice": True}, None, None),
        ("document", {"id": "m4", "mime_type": "application/pdf", "sha256": "x", "filename": "a.pdf",
                      "caption": "invoice"}, "invoice", None),
        ("sticker", {"id": "m5", "mime_type": "image/webp", "sha256": "x", "animated": False}, None, None),
        ("location", {"latitude": 40.4, "longitude": -3.7, "name": "Sol", "address": "Madrid"}, "Sol", None),
        ("interactive", {"type": "button_reply", "button_reply": {"id": "b1", "title": "Yes"}}, "Yes", "b1"),
        ("interactive", {"type": "list_reply", "list_reply": {"id": "r2", "title": "Row 2", "description": "d"}},
         "Row 2", "r2"),
        ("interactive", {"type": "nfm_reply", "nfm_reply": {"response_json": "{\"flow_token\":\"t\"}",
                                                          "body": "Sent", "name": "flow"}},
         "Sent", "{\"flow_token\":\"t\"}"),
        ("button", {"payload": "STOP", "text": "Stop promotions"}, "Stop promotions", "STOP"),
        ("reaction", {"message_id": "wamid.OUR", "emoji": "😮"}, "😮", None),
        ("reaction", {"message_id": "wamid.OUR", "emoji": ""}, "", None),
        ("order", {"catalog_id": "c1", "text": "please", "product_items": [
            {"product_retailer_id": "sku1", "quantity": 2, "item_price": 9.5, "currency": "EUR"}]}, "please", None),
        ("system", {"body": "User A changed from X to Y", "wa_id": "34600999888", "type": "user_changed_number"},
         "User A changed from X to Y", None),
        ("request_welcome", None, None, None),
    ],
)
def test_every_inbound_type(mtype: str, obj: Any, text: str | None, payload: str | None) -> None:
    msg = one_message(P.message(mtype, obj))
    assert msg.type == mtype
    assert (msg.text, msg.payload) == (text, payload)
    assert msg.content == (obj or {})
    # the typed models accept the same body
    WebhookPayload.model_validate(P.message(mtype, obj)).entry[0].changes[0].messages_value()


def test_contacts_message_keeps_the_array() -> None:
    shared = [{"name": {"formatted_name": "Bob"}, "phones": [{"phone": "+1 555", "wa_id": "1555", "type": "CELL"}]}]
    msg = one_message(P.message("contacts", shared))
    assert msg.content == {"contacts": shared}


def test_reaction_points_at_reacted_message() -> None:
    msg = one_message(P.message("reaction", {"message_id": "wamid.OUR", "emoji": "👍"}))
    assert msg.context_message_id == "wamid.OUR"


def test_unsupported_keeps_errors_and_object() -> None:
    errors = [{"code": 131051, "title": "Message type unknown", "message": "Message type unknown",
               "error_data": {"details": "Message type is currently not supported."}}]
    msg = one_message(P.message("unsupported", {"type": "poll"}, extra={"errors": errors}))
    assert msg.content == {"type": "poll"}
    assert msg.errors[0].code == 131051 and msg.errors[0].details == "Message type is currently not supported."


def test_context_and_referral() -> None:
    referral = {"source_url": "https://fb.me/x", "source_id": "ad1", "source_type": "ad", "body": "b",
                "headline": "h", "media_type": "image", "image_url": "https://i", "ctwa_clid": "clid",
                "welcome_message": {"text": "hi"}}
    msg = one_message(P.message("text", {"body": "hi"}, extra={
        "referral": referral, "context": {"from": "15550783881", "id": "wamid.CTX", "forwarded": True}}))
    assert msg.referral == referral and msg.context_message_id == "wamid.CTX"


def test_unknown_type_and_fields_are_kept() -> None:
    doc = P.message("poll_vote", {"poll_id": "p1", "option": 2, "body": "B"},
                    extra={"future_field": {"a": 1}})
    doc["entry"][0]["changes"][0]["value"]["brand_new"] = True
    [ev] = parse_webhook(P.wire(doc)).events
    assert isinstance(ev.event, InboundMessage)
    assert ev.event.type == "poll_vote" and ev.event.content == {"poll_id": "p1", "option": 2, "body": "B"}
    assert ev.event.text == "B"
    assert ev.payload["raw"]["future_field"] == {"a": 1}
    typed = WebhookPayload.model_validate(doc).entry[0].changes[0].messages_value()
    assert typed.model_extra == {"brand_new": True}
    assert typed.messages is not None and typed.messages[0].model_extra is not None
    assert typed.messages[0].model_extra["poll_vote"]["poll_id"] == "p1"


def test_business_scoped_user_id_only() -> None:
    contact = {"profile": {"name": "Eve", "username": "@eve"}, "user_id": "US.13491208655302741918"}
    msg_doc = P.message("text", {"body": "hey"}, contact=contact)
    m = msg_doc["entry"][0]["changes"][0]["value"]["messages"][0]
    del m["from"]
    m["from_user_id"] = "US.13491208655302741918"
    msg = one_message(msg_doc)
    assert msg.contact.wa_id is None and msg.contact.user_id == "US.13491208655302741918"
    assert msg.contact.key == "US.13491208655302741918" and msg.contact.profile_name == "Eve"


def test_both_wa_id_and_user_id() -> None:
    contact = {"profile": {"name": "Ana"}, "wa_id": "34600111222", "user_id": "US.1"}
    msg = one_message(P.message("text", {"body": "x"}, contact=contact))
    assert (msg.contact.wa_id, msg.contact.user_id, msg.contact.key) == ("34600111222", "US.1", "34600111222")


def test_template_status_update() -> None:
    [ev] = parse_webhook(P.wire(P.TEMPLATE_STATUS)).events
    assert ev.kind is EventKind.TEMPLATE_STATUS
    assert ev.dedup_key == "tpl:1234567890:APPROVED:1760000100"
    assert isinstance(ev.event, TemplateStatusUpdate)
    assert (ev.event.name, ev.event.language, ev.event.waba_id) == ("order_update", "en_US", P.WABA)
    assert ev.payload["raw"]["message_template_category"] == "UTILITY"


def test_other_field_and_value_errors() -> None:
    [ev] = parse_webhook(P.wire(P.ACCOUNT_UPDATE)).events
    assert ev.kind is EventKind.OTHER and ev.dedup_key.startswith("oth:account_update:")
    assert ev.payload["raw"]["violation_info"] == {"violation_type": "SCAM"}
    assert parse_webhook(P.wire(P.ACCOUNT_UPDATE)).events[0].dedup_key == ev.dedup_key  # stable
    [ev] = parse_webhook(P.wire(P.VALUE_ERRORS)).events
    assert ev.kind is EventKind.ERROR and ev.dedup_key.startswith("err:")
    assert ev.payload["errors"][0]["code"] == 130429


def test_batched_payload_every_entry_and_change() -> None:
    sts = [{"id": f"wamid.S{i}", "status": s, "timestamp": "1760000051", "recipient_id": "34600111222"}
           for i in range(3) for s in ("sent", "delivered", "read")]
    doc = P.status("sent")
    doc["entry"][0]["changes"][0]["value"]["statuses"] = sts
    doc["entry"][0]["changes"].append(P.message("text", {"body": "a"}, wamid="wamid.A")["entry"][0]["changes"][0])
    doc["entry"].append(P.message("text", {"body": "b"}, wamid="wamid.B")["entry"][0])
    doc["entry"].append(P.TEMPLATE_STATUS["entry"][0])
    parsed = parse_webhook(P.wire(doc))
    keys = [e.dedup_key for e in parsed.events]
    assert keys[:9] == [f"st:wamid.S{i}:{s}" for i in range(3) for s in ("sent", "delivered", "read")]
    assert keys[9:] == ["msg:wamid.A", "msg:wamid.B", "tpl:1234567890:APPROVED:1760000100"]
    assert len(parsed.contacts) == 2


def test_played_status_and_unknown_status_kept() -> None:
    [ev] = parse_webhook(P.wire(P.status("played"))).events
    assert isinstance(ev.event, StatusUpdate) and ev.event.status is DeliveryStatus.PLAYED
    [ev] = parse_webhook(P.wire(P.status("deleted"))).events
    assert ev.kind is EventKind.OTHER and ev.dedup_key == "st:wamid.S1:deleted"
    assert ev.payload["raw"]["status"] == "deleted"


@pytest.mark.parametrize(
    ("body", "where", "problem"),
    [
        (b"", "body", "empty"),
        (b'{"object":"whatsapp_business_account","entry":[', "body", "not valid JSON"),
        (b"\xff\xfe garbage", "body", "not valid JSON"),
        (b"[1,2]", "body", "expected an object, got an array"),
        (b'{"object":"page","entry":[]}', "object", "expected 'whatsapp_business_account'"),
        (b'{"object":"whatsapp_business_account"}', "entry", "expected an array, got null"),
    ],
)
def test_garbage_names_the_problem(body: bytes, where: str, problem: str) -> None:
    with pytest.raises(WebhookParseError) as info:
        parse_webhook(body)
    assert info.value.where == where
    assert problem in str(info.value)


def rejected_one(doc: dict[str, Any]) -> RejectedFragment:
    parsed = parse_webhook(P.wire(doc))
    assert parsed.events == []
    [fragment] = parsed.rejected
    return fragment


def test_bad_message_fields_name_their_path() -> None:
    doc = P.message("text", {"body": "x"})
    doc["entry"][0]["changes"][0]["value"]["messages"][0]["timestamp"] = "yesterday"
    bad = rejected_one(doc)
    assert bad.where == "entry[0].changes[0].value.messages[0]"
    assert bad.problem.startswith("entry[0].changes[0].value.messages[0].timestamp: expected unix seconds")
    doc = P.status("sent")
    del doc["entry"][0]["changes"][0]["value"]["statuses"][0]["id"]
    bad = rejected_one(doc)
    assert (bad.where, bad.problem) == ("entry[0].changes[0].value.statuses[0]",
                                        "entry[0].changes[0].value.statuses[0].id: missing")
    doc = P.status("sent")
    del doc["entry"][0]["changes"][0]["value"]["metadata"]
    bad = rejected_one(doc)
    assert bad.where == "entry[0].changes[0]"
    assert bad.problem == "entry[0].changes[0].value.metadata: expected an object, got null"
    bad = rejected_one({"object": "whatsapp_business_account", "entry": [{"changes": []}]})
    assert (bad.where, bad.problem) == ("entry[0]", "entry[0].id: missing")


def batch(*changes: dict[str, Any]) -> dict[str, Any]:
    return {"object": "whatsapp_business_account", "entry": [{"id": P.WABA, "time": 1760000100,
                                                              "changes": list(changes)}]}


def test_one_bad_message_is_rejected_alone() -> None:
    contacts = [{"profile": {"name": "Ana"}, "wa_id": "34600111222"}, {"profile": {"name": "Bo"}, "wa_id": "34600999"}]
    msgs = [{"from": "34600111222", "id": f"wamid.M{i}", "timestamp": "1760000000", "type": "text",
             "text": {"body": f"m{i}"}} for i in range(4)]
    msgs[2] = {"from": "34600999", "id": "wamid.M2", "timestamp": "1760000000", "text": {"body": "no type"}}
    doc = batch({"field": "messages", "value": {"messaging_product": "whatsapp", "metadata": P.META,
                                                "contacts": contacts, "messages": msgs}})
    parsed = parse_webhook(P.wire(doc))
    assert [e.dedup_key for e in parsed.events] == ["msg:wamid.M0", "msg:wamid.M1", "msg:wamid.M3"]
    assert len(parsed.contacts) == 3
    [bad] = parsed.rejected
    assert bad.where == "entry[0].changes[0].value.messages[2]"
    assert bad.problem == "entry[0].changes[0].value.messages[2].type: missing"
    assert (bad.waba_id, bad.phone_number_id) == (P.WABA, P.PNID)
    # the fragment's body is a webhook body of its own: the entry, the change, the value's metadata,
    # the sender's contact and only the rejected message
    kept = json.loads(bad.body)
    assert kept == batch({"field": "messages", "value": {"messaging_product": "whatsapp", "metadata": P.META,
                                                         "contacts": [contacts[1]], "messages": [msgs[2]]}})
    assert parse_webhook(P.wire(doc)).rejected == parsed.rejected  # the same bytes on every redelivery
    assert WebhookPayload.model_validate(kept).entry[0].id == P.WABA


def test_broken_change_beside_a_good_one() -> None:
    good = P.status("delivered")["entry"][0]["changes"][0]
    broken = {"field": "messages", "value": {"messaging_product": "whatsapp", "metadata": P.META,
                                             "statuses": {"id": "not-an-array"}}}
    doc = batch(good, broken, {"field": "message_template_status_update", "value": {"event": "APPROVED"}},
                P.message("text", {"body": "x"}, wamid="wamid.OK")["entry"][0]["changes"][0])
    parsed = parse_webhook(P.wire(doc))
    assert [e.dedup_key for e in parsed.events] == ["st:wamid.S1:delivered", "msg:wamid.OK"]
    assert [(r.where, r.problem) for r in parsed.rejected] == [
        ("entry[0].changes[1]", "entry[0].changes[1].value.statuses: expected an array, got an object"),
        ("entry[0].changes[2]", "entry[0].changes[2].value.message_template_id: missing"),
    ]
    assert json.loads(parsed.rejected[0].body)["entry"][0]["changes"] == [broken]
    assert parsed.rejected[0].phone_number_id == P.PNID and parsed.rejected[1].phone_number_id is None


def test_broken_entry_and_value_errors_beside_good_ones() -> None:
    doc = P.message("text", {"body": "x"})
    doc["entry"].insert(0, "not an entry")
    doc["entry"].append({"id": P.WABA, "changes": [{"field": "messages", "value": {
        "metadata": P.META, "errors": [{"title": "no code"}]}}]})
    parsed = parse_webhook(P.wire(doc))
    assert [e.dedup_key for e in parsed.events] == ["msg:wamid.M1"]
    assert [(r.where, r.problem) for r in parsed.rejected] == [
        ("entry[0]", "entry[0]: expected an object, got a string"),
        ("entry[2].changes[0].value.errors", "entry[2].changes[0].value.errors[0].code: expected an integer, got null"),
    ]
    assert json.loads(parsed.rejected[0].body) == {"object": "whatsapp_business_account", "entry": ["not an entry"]}


def test_fragment_too_deep_to_keep_alone_keeps_the_whole_body() -> None:
    # orjson reads 1024 levels but writes 254, the standard library ~1000: past both, no fragment
    doc = P.message("text", {"body": "x"})
    doc["entry"][0]["changes"][0]["value"]["messages"][0]["type"] = "DEEP"
    raw = P.wire(doc).replace(b'"DEEP"', b"[" * 1010 + b"1" + b"]" * 1010)
    with pytest.raises(WebhookParseError) as info:
        parse_webhook(raw)
    assert info.value.where == "entry[0].changes[0].value.messages[0]"
    assert "nested too deeply" in str(info.value)
    # deeper than orjson writes, not than the standard library: still a fragment of its own
    raw = P.wire(doc).replace(b'"DEEP"', b"[" * 300 + b"1" + b"]" * 300)
    [bad] = parse_webhook(raw).rejected
    assert bad.where == "entry[0].changes[0].value.messages[0]" and b"[" * 300 in bad.body
    # an other-field value too deep even to hash for its dedup key: the whole body, not a crash
    deep_other = b'{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"x","value":'
    with pytest.raises(WebhookParseError, match=r"entry\[0\]\.changes\[0\]: .*nested too deeply"):
        parse_webhook(deep_other + b"[" * 1015 + b"]" * 1015 + b"}]}]}")


@pytest.mark.parametrize(
    "error",
    [
        {"code": 131026, "title": "Undeliverable", "error_data": {"details": "new shape"}},
        {"code": 131026, "title": "Undeliverable", "details": "new shape"},  # older payloads
        {"code": 131026, "title": "Undeliverable", "error_data": {"details": "new shape"}, "details": "old"},
        {"code": 131026, "title": "Undeliverable", "error_data": {}, "details": "new shape"},
    ],
)
def test_error_details_at_either_level(error: dict[str, Any]) -> None:
    [ev] = parse_webhook(P.wire(P.status("failed", errors=[error]))).events
    assert isinstance(ev.event, StatusUpdate) and ev.event.errors[0].details == "new shape"
    assert ev.payload["errors"][0]["details"] == "new shape"
    [ev] = parse_webhook(P.wire(P.message("unsupported", {"type": "poll"}, extra={"errors": [error]}))).events
    assert isinstance(ev.event, InboundMessage) and ev.event.errors[0].details == "new shape"
    doc = P.envelope({"messaging_product": "whatsapp", "metadata": P.META, "errors": [error]})
    [ev] = parse_webhook(P.wire(doc)).events
    assert ev.kind is EventKind.ERROR and ev.payload["errors"][0]["details"] == "new shape"
    typed = WebhookPayload.model_validate(doc).entry[0].changes[0].messages_value()
    assert typed.errors is not None and typed.errors[0].details_text == "new shape"


def test_non_ascii_escaped_and_raw_utf8_parse_the_same() -> None:
    doc = P.message("text", {"body": "¿qué tal? 😮"})
    assert one_message(doc).text == "¿qué tal? 😮"
    assert parse_webhook(json.dumps(doc, ensure_ascii=False).encode()).events[0].payload["text"] == "¿qué tal? 😮"
