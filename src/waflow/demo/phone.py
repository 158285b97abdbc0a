"""A simulated user's phone: what the business sent, rendered as a person sees it, and taps on its choices."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from waflow.emulator import OutboundMessage, SimulatedUser

TICKS = {"accepted": "·", "sent": "✓", "delivered": "✓✓", "read": "[blue]✓✓[/blue]", "played": "[blue]✓✓[/blue]",
         "failed": "[red]✗[/red]"}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Choice:
    id: str
    title: str
    kind: str  # "button" or "row"


def _get(obj: Any, *keys: str) -> Any:
    for key in keys:
        obj = obj.get(key) if isinstance(obj, dict) else None
    return obj


def render(msg: OutboundMessage) -> tuple[str, list[Choice]]:
    """The text a person reads, and the buttons / list rows they can tap."""
    content = msg.content if isinstance(msg.content, dict) else {}
    if msg.type == "text":
        return str(content.get("body", "")), []
    if msg.type == "interactive":
        text = str(_get(content, "body", "text") or "")
        choices: list[Choice] = []
        for b in _get(content, "action", "buttons") or []:
            reply = b.get("reply", {}) if isinstance(b, dict) else {}
            choices.append(Choice(str(reply.get("id")), str(reply.get("title")), "button"))
        for section in _get(content, "action", "sections") or []:
            for row in section.get("rows", []) if isinstance(section, dict) else []:
                choices.append(Choice(str(row.get("id")), str(row.get("title")), "row"))
        return text, choices
    if msg.type == "template":
        return f"(template {content.get('name')})", []
    if msg.type in ("image", "video", "document", "audio", "sticker"):
        return f"({msg.type}) {content.get('caption') or content.get('link') or ''}".strip(), []
    if msg.type == "location":
        return f"(location) {content.get('name') or ''}".strip(), []
    return f"({msg.type})", []


class Phone:
    """One user's side of the chat: `await phone.next()` for the next business message, `tap(title)` to answer."""

    def __init__(self, user: SimulatedUser) -> None:
        self.user = user
        self.seen = 0
        self.last_interactive: OutboundMessage | None = None

    async def next(self, timeout: float = 10.0) -> OutboundMessage:  # noqa: ASYNC109
        msgs = await self.user.wait_for_received(self.seen + 1, timeout=timeout)
        msg = msgs[self.seen]
        self.seen += 1
        if render(msg)[1]:
            self.last_interactive = msg
        return msg

    def pending(self) -> list[OutboundMessage]:
        """Messages received and not yet taken with `next()`."""
        return self.user.received()[self.seen:]

    async def settle(self, quiet_s: float = 0.3, timeout: float = 5.0) -> list[OutboundMessage]:  # noqa: ASYNC109
        """Take every message that arrives until none came for `quiet_s`."""
        out: list[OutboundMessage] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            try:
                out.append(await self.next(timeout=quiet_s))
            except TimeoutError:
                return out
        return out

    def choice(self, answer: str) -> Choice | None:
        """The choice of the last interactive message matching a number (1-based) or a title (any case)."""
        if self.last_interactive is None:
            return None
        choices = render(self.last_interactive)[1]
        answer = answer.strip()
        if answer.isdigit() and 1 <= int(answer) <= len(choices):
            return choices[int(answer) - 1]
        for c in choices:
            if c.title.casefold() == answer.casefold() or c.id.casefold() == answer.casefold():
                return c
        return None

    async def tap(self, answer: str) -> Choice:
        """Tap a button / list row of the last interactive message (by number or title)."""
        choice = self.choice(answer)
        if choice is None or self.last_interactive is None:
            raise LookupError(f"no choice {answer!r} on the last message")
        wamid = self.last_interactive.wamid
        if choice.kind == "button":
            await self.user.reply_button(to_message=wamid, id=choice.id, title=choice.title)
        else:
            await self.user.reply_list(to_message=wamid, id=choice.id, title=choice.title)
        return choice

    async def say(self, text: str) -> str:
        return await self.user.send_text(text)
