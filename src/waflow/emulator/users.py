"""Simulated WhatsApp users for tests: make them write, tap and react; read what they received."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from . import inbound
from .core import Emulator
from .state import OutboundMessage, UserState

_SAMPLE_BYTES = {
    "image": b"\xff\xd8\xff\xe0fake-jpeg",
    "video": b"\x00\x00\x00\x18ftypmp42fake",
    "audio": b"OggSfake-opus",
    "document": b"%PDF-1.4 fake",
    "sticker": b"RIFF\x00\x00\x00\x00WEBPfake",
}


class SimulatedUser:
    """One user. Every `send_*`/`reply_*` returns the inbound wamid once the webhook was attempted.

    `wait=False` returns right after queueing. `reply_to` / `to_message` quote a business message.
    """

    def __init__(self, emulator: Emulator, state: UserState) -> None:
        self._emu = emulator
        self._state = state

    def __repr__(self) -> str:
        return f"SimulatedUser(wa_id={self.wa_id!r}, name={self.name!r})"

    @property
    def wa_id(self) -> str:
        return self._state.wa_id

    @property
    def user_id(self) -> str:
        return self._state.user_id

    @property
    def name(self) -> str:
        return self._state.name

    @property
    def window_open(self) -> bool:
        return self._emu.window_open(self._state)

    # -- sending ---------------------------------------------------------------------------
    async def send(self, message: dict[str, Any], *, reply_to: str | None = None,
                   referral: dict[str, Any] | None = None, forwarded: bool = False,
                   wait: bool = True, timeout: float = 10.0) -> str:  # noqa: ASYNC109
        """Send any inbound message object (`{"type": ..., <type>: {...}}`) from this user."""
        msg = dict(message)
        if reply_to is not None or forwarded:
            ctx: dict[str, Any] = {}
            if reply_to is not None:
                ctx = {"from": self._emu.config.display_phone_number, "id": reply_to}
            if forwarded:
                ctx["forwarded"] = True
            msg["context"] = ctx
        if referral is not None:
            msg["referral"] = referral
        wamid, done = self._emu.inject(self._state, msg)
        if wait:
            await asyncio.wait_for(asyncio.shield(done), timeout)
        return wamid

    async def send_text(self, body: str, **kw: Any) -> str:
        return await self.send(inbound.text(body), **kw)

    async def send_media(self, kind: str, data: bytes | None = None, *, mime_type: str | None = None,
                         caption: str | None = None, filename: str | None = None, voice: bool | None = None,
                         animated: bool | None = None, **kw: Any) -> str:
        """image / video / audio / document / sticker; the bytes are downloadable via GET /{media-id}."""
        mime = mime_type or inbound.DEFAULT_MIME[kind]
        m = self._emu.media.add_inbound(mime.split(";")[0], data or _SAMPLE_BYTES[kind], self._emu.clock.now())
        msg = inbound.media(kind, m.id, mime, m.sha256, caption=caption, filename=filename, voice=voice,
                            animated=animated)
        return await self.send(msg, **kw)

    async def send_image(self, data: bytes | None = None, *, caption: str | None = None, **kw: Any) -> str:
        return await self.send_media("image", data, caption=caption, **kw)

    async def send_video(self, data: bytes | None = None, *, caption: str | None = None, **kw: Any) -> str:
        return await self.send_media("video", data, caption=caption, **kw)

    async def send_audio(self, data: bytes | None = None, *, voice: bool = True, **kw: Any) -> str:
        return await self.send_media("audio", data, voice=voice, **kw)

    async def send_document(self, data: bytes | None = None, *, filename: str = "file.pdf",
                            caption: str | None = None, **kw: Any) -> str:
        return await self.send_media("document", data, filename=filename, caption=caption, **kw)

    async def send_sticker(self, data: bytes | None = None, *, animated: bool = False, **kw: Any) -> str:
        return await self.send_media("sticker", data, animated=animated, **kw)

    async def send_location(self, latitude: float, longitude: float, name: str | None = None,
                            address: str | None = None, **kw: Any) -> str:
        return await self.send(inbound.location(latitude, longitude, name, address), **kw)

    async def send_contacts(self, contacts: list[dict[str, Any]], **kw: Any) -> str:
        return await self.send(inbound.contacts(contacts), **kw)

    async def reply_button(self, *, to_message: str, id: str, title: str, **kw: Any) -> str:
        """Tap a reply button of an interactive message the business sent."""
        return await self.send(inbound.button_reply(id, title), reply_to=to_message, **kw)

    async def reply_list(self, *, to_message: str, id: str, title: str, description: str | None = None,
                         **kw: Any) -> str:
        return await self.send(inbound.list_reply(id, title, description), reply_to=to_message, **kw)

    async def reply_flow(self, *, to_message: str, response: dict[str, Any], **kw: Any) -> str:
        return await self.send(inbound.flow_reply(json.dumps(response)), reply_to=to_message, **kw)

    async def tap_template_button(self, *, to_message: str, payload: str, text: str, **kw: Any) -> str:
        """Tap a template's quick-reply button (inbound type `button`)."""
        return await self.send(inbound.template_button(payload, text), reply_to=to_message, **kw)

    async def react(self, *, to_message: str, emoji: str, **kw: Any) -> str:
        return await self.send(inbound.reaction(to_message, emoji), **kw)

    async def send_order(self, catalog_id: str, items: list[dict[str, Any]], **kw: Any) -> str:
        return await self.send(inbound.order(catalog_id, items), **kw)

    async def send_unsupported(self, kind: str = "poll", **kw: Any) -> str:
        return await self.send(inbound.unsupported(kind), **kw)

    async def change_number(self, new_wa_id: str, **kw: Any) -> str:
        """The `system` user_changed_number notice (the user keeps writing as this helper)."""
        return await self.send(inbound.system_number_change(self.wa_id, new_wa_id, self.name), **kw)

    # -- receiving -------------------------------------------------------------------------
    def received(self) -> list[OutboundMessage]:
        """What the business sent this user (accepted sends), in acceptance order."""
        return list(self._state.received)

    def sent(self) -> list[dict[str, Any]]:
        """The inbound message objects this user sent, in order."""
        return list(self._state.sent)

    async def wait_for_received(self, count: int, timeout: float = 5.0) -> list[OutboundMessage]:  # noqa: ASYNC109
        deadline = time.monotonic() + timeout
        while len(self._state.received) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.wa_id} received {len(self._state.received)} of {count} messages")
            await asyncio.sleep(0.005)
        return self.received()

    async def wait_for_status(
        self, wamid: str, status: str, timeout: float = 5.0  # noqa: ASYNC109
    ) -> OutboundMessage:
        msg = self._emu.state.outbound[wamid]
        deadline = time.monotonic() + timeout
        while status not in msg.status_history:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{wamid} never reached {status} (history {msg.status_history})")
            await asyncio.sleep(0.005)
        return msg

    def read(self, wamid: str | None = None) -> None:
        """The user opens the chat: `read` for one message or every delivered-but-unread one."""
        targets = [self._emu.state.outbound[wamid]] if wamid else self._state.received
        for m in targets:
            if m.status in ("sent", "delivered"):
                self._emu.emit_status(m, "read")
