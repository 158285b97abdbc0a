"""Builders for the inbound message objects a WhatsApp user produces (reference §5.3)."""

from __future__ import annotations

from typing import Any

DEFAULT_MIME = {
    "image": "image/jpeg",
    "video": "video/mp4",
    "audio": "audio/ogg; codecs=opus",
    "document": "application/pdf",
    "sticker": "image/webp",
}


def text(body: str) -> dict[str, Any]:
    return {"type": "text", "text": {"body": body}}


def media(kind: str, media_id: str, mime_type: str, sha256: str, *, caption: str | None = None,
          filename: str | None = None, voice: bool | None = None, animated: bool | None = None) -> dict[str, Any]:
    obj: dict[str, Any] = {"id": media_id, "mime_type": mime_type, "sha256": sha256}
    if caption is not None and kind in ("image", "video", "document"):
        obj["caption"] = caption
    if kind == "document":
        obj["filename"] = filename or "file.pdf"
    if kind == "audio":
        obj["voice"] = bool(voice)
    if kind == "sticker":
        obj["animated"] = bool(animated)
    return {"type": kind, kind: obj}


def location(latitude: float, longitude: float, name: str | None = None, address: str | None = None) -> dict[str, Any]:
    obj: dict[str, Any] = {"latitude": latitude, "longitude": longitude}
    if name is not None:
        obj["name"] = name
    if address is not None:
        obj["address"] = address
    return {"type": "location", "location": obj}


def contacts(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"type": "contacts", "contacts": items}


def button_reply(button_id: str, title: str) -> dict[str, Any]:
    return {"type": "interactive",
            "interactive": {"type": "button_reply", "button_reply": {"id": button_id, "title": title}}}


def list_reply(row_id: str, title: str, description: str | None = None) -> dict[str, Any]:
    row: dict[str, Any] = {"id": row_id, "title": title}
    if description is not None:
        row["description"] = description
    return {"type": "interactive", "interactive": {"type": "list_reply", "list_reply": row}}


def flow_reply(response_json: str) -> dict[str, Any]:
    return {"type": "interactive",
            "interactive": {"type": "nfm_reply",
                            "nfm_reply": {"response_json": response_json, "body": "Sent", "name": "flow"}}}


def template_button(payload: str, text_: str) -> dict[str, Any]:
    return {"type": "button", "button": {"payload": payload, "text": text_}}


def reaction(message_id: str, emoji: str) -> dict[str, Any]:
    return {"type": "reaction", "reaction": {"message_id": message_id, "emoji": emoji}}


def unsupported(kind: str = "poll") -> dict[str, Any]:
    return {
        "type": "unsupported",
        "unsupported": {"type": kind},
        "errors": [{"code": 131051, "title": "Message type unknown", "message": "Message type unknown",
                    "error_data": {"details": "Message type is currently not supported."}}],
    }


def system_number_change(old_wa_id: str, new_wa_id: str, name: str) -> dict[str, Any]:
    return {"type": "system",
            "system": {"body": f"{name} changed from {old_wa_id} to {new_wa_id}", "wa_id": new_wa_id,
                       "type": "user_changed_number"}}


def order(catalog_id: str, items: list[dict[str, Any]], text_: str = "") -> dict[str, Any]:
    return {"type": "order", "order": {"catalog_id": catalog_id, "text": text_, "product_items": items}}


def referral(*, source_url: str = "https://fb.me/ad123", source_id: str = "120210000000000",
             source_type: str = "ad", headline: str = "Spring sale", body: str = "Tap to chat",
             ctwa_clid: str = "ARAkLkA8rmlFeiCktEJQ-QTwRiyYHAFDLMNDBH0CD3qpjd0HR4irJ6LEkR7JwFF4XvnO2E4Nx0"
             ) -> dict[str, Any]:
    return {"source_url": source_url, "source_id": source_id, "source_type": source_type, "headline": headline,
            "body": body, "media_type": "image", "image_url": "https://scontent.example/ad.jpg",
            "ctwa_clid": ctwa_clid}
