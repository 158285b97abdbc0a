# ruff: noqa: E501  (the reference examples are kept verbatim)
"""Cloud API webhook bodies for the parser tests: the reference's §5.6 examples plus every type of §5.3."""

from __future__ import annotations

import json
from typing import Any

WABA = "102290129340398"
PNID = "106540352242922"
META = {"display_phone_number": "15550783881", "phone_number_id": PNID}
CONTACT = {"profile": {"name": "Ana Ruiz"}, "wa_id": "34600111222"}


def envelope(value: dict[str, Any], field: str = "messages", *, waba: str = WABA, time: int | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {"id": waba, "changes": [{"field": field, "value": value}]}
    if time is not None:
        entry["time"] = time
    return {"object": "whatsapp_business_account", "entry": [entry]}


def wire(doc: dict[str, Any]) -> bytes:
    """As Meta sends it: ASCII-escaped, compact."""
    return json.dumps(doc, ensure_ascii=True, separators=(",", ":")).encode()


def message(mtype: str, obj: Any, *, wamid: str = "wamid.M1", extra: dict[str, Any] | None = None,
            contact: dict[str, Any] | None = None) -> dict[str, Any]:
    msg: dict[str, Any] = {"from": "34600111222", "id": wamid, "timestamp": "1760000000", "type": mtype}
    if obj is not None:
        msg[mtype] = obj
    msg.update(extra or {})
    return envelope({"messaging_product": "whatsapp", "metadata": META,
                     "contacts": [contact or CONTACT], "messages": [msg]})


def status(status: str, *, wamid: str = "wamid.S1", ts: str = "1760000051", **extra: Any) -> dict[str, Any]:
    st: dict[str, Any] = {"id": wamid, "status": status, "timestamp": ts, "recipient_id": "34600111222", **extra}
    return envelope({"messaging_product": "whatsapp", "metadata": META, "statuses": [st]})


# -- §5.6 verbatim ------------------------------------------------------------------------------

EXAMPLE_TEXT = """{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{"field":"messages","value":{
  "messaging_product":"whatsapp",
  "metadata":{"display_phone_number":"15550783881","phone_number_id":"106540352242922"},
  "contacts":[{"profile":{"name":"Ana Ruiz"},"wa_id":"34600111222"}],
  "messages":[{"from":"34600111222","id":"wamid.HBgLMzQ2MDAxMTEyMjIVAgASGBQzQUI3RDFFNkIzQzFGMEE5RTc2RgA=",
    "timestamp":"1760000000","type":"text","text":{"body":"Hola, \\u00bften\\u00e9is stock?"}}]}}]}]}"""

EXAMPLE_BUTTON = """{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{"field":"messages","value":{
  "messaging_product":"whatsapp",
  "metadata":{"display_phone_number":"15550783881","phone_number_id":"106540352242922"},
  "contacts":[{"profile":{"name":"Ana Ruiz"},"wa_id":"34600111222"}],
  "messages":[{"context":{"from":"15550783881","id":"wamid.HBgLMzQ2MDAxMTEyMjIVAgARGBI3RjEyQUI0QzlEMEUxRjIzNDUA"},
    "from":"34600111222","id":"wamid.HBgLMzQ2MDAxMTEyMjIVAgASGBQzQTFCMkMzRDRFNUY2MDcxODI5MwA=",
    "timestamp":"1760000042","type":"interactive",
    "interactive":{"type":"button_reply","button_reply":{"id":"confirm-yes","title":"Yes"}}}]}}]}]}"""

EXAMPLE_DELIVERED = """{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{"field":"messages","value":{
  "messaging_product":"whatsapp",
  "metadata":{"display_phone_number":"15550783881","phone_number_id":"106540352242922"},
  "statuses":[{"id":"wamid.HBgLMzQ2MDAxMTEyMjIVAgARGBI3RjEyQUI0QzlEMEUxRjIzNDUA","status":"delivered",
    "timestamp":"1760000051","recipient_id":"34600111222","biz_opaque_callback_data":"order-42",
    "conversation":{"id":"8f842dbba350821654c9dfed31f5635c","origin":{"type":"utility"}},
    "pricing":{"billable":false,"pricing_model":"PMP","type":"free_customer_service","category":"utility"}}]}}]}]}"""

EXAMPLE_FAILED = """{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{"field":"messages","value":{
  "messaging_product":"whatsapp",
  "metadata":{"display_phone_number":"15550783881","phone_number_id":"106540352242922"},
  "statuses":[{"id":"wamid.HBgLMzQ2MDAxMTEyMjIVAgARGBJBQkNERUYwMTIzNDU2Nzg5AA==","status":"failed",
    "timestamp":"1760100000","recipient_id":"34600111222",
    "errors":[{"code":131047,"title":"Re-engagement message","message":"Re-engagement message",
      "error_data":{"details":"Message failed to send because more than 24 hours have passed since the customer last replied to this number."},
      "href":"https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/"}]}]}}]}]}"""

TEMPLATE_STATUS = envelope(
    {"event": "APPROVED", "message_template_id": 1234567890, "message_template_name": "order_update",
     "message_template_language": "en_US", "reason": "NONE", "message_template_category": "UTILITY"},
    field="message_template_status_update", time=1760000100,
)

ACCOUNT_UPDATE = envelope({"event": "ACCOUNT_VIOLATION", "violation_info": {"violation_type": "SCAM"}},
                          field="account_update", time=1760000200)

VALUE_ERRORS = envelope({"messaging_product": "whatsapp", "metadata": META,
                         "errors": [{"code": 130429, "title": "Rate limit hit", "message": "Rate limit hit",
                                     "error_data": {"details": "throughput reached"}}]})
