"""What the emulator remembers during a run: users, messages both ways, the accepted-send log."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .ids import user_id_for

STATUS_RANK = {"accepted": 0, "sent": 1, "delivered": 2, "read": 3, "played": 4, "failed": 5}


@dataclass(slots=True)
class OutboundMessage:
    """A message the business sent (accepted with 200), as its recipient sees it."""

    wamid: str
    seq: int
    wa_id: str
    user_id: str
    to_input: str
    type: str
    content: Any
    context_id: str | None
    callback_data: str | None
    accepted_at: float  # emulator clock
    template_category: str | None = None
    status: str = "accepted"
    errors: list[dict[str, Any]] = field(default_factory=list)
    status_history: list[str] = field(default_factory=list)

    def advance(self, status: str) -> None:
        """Statuses only move forward; failed is terminal."""
        self.status_history.append(status)
        if self.status == "failed":
            return
        if status == "failed":
            if self.status not in ("read", "played"):
                self.status = status
        elif STATUS_RANK[status] > STATUS_RANK[self.status]:
            self.status = status

    def as_dict(self) -> dict[str, Any]:
        return {
            "wamid": self.wamid, "to": self.wa_id, "user_id": self.user_id, "type": self.type,
            "content": self.content, "context_id": self.context_id,
            "biz_opaque_callback_data": self.callback_data, "status": self.status,
            "status_history": list(self.status_history), "errors": self.errors, "accepted_at": self.accepted_at,
        }


@dataclass(slots=True)
class UserState:
    wa_id: str
    name: str
    user_id: str
    last_inbound_at: float | None = None
    received: list[OutboundMessage] = field(default_factory=list)
    sent: list[dict[str, Any]] = field(default_factory=list)  # inbound message objects this user sent

    def contact(self) -> dict[str, Any]:
        return {"profile": {"name": self.name}, "wa_id": self.wa_id, "user_id": self.user_id}


class EmulatorState:
    def __init__(self) -> None:
        self.users: dict[str, UserState] = {}
        self._users_by_bsuid: dict[str, UserState] = {}
        self.outbound: dict[str, OutboundMessage] = {}
        self.inbound_ids: set[str] = set()
        self.send_log: list[OutboundMessage] = []  # every accepted send, in order
        self.read_receipts: list[str] = []
        self.typing_indicators: list[str] = []
        self._seq = 0

    def user(self, wa_id: str, name: str | None = None) -> UserState:
        u = self.users.get(wa_id)
        if u is None:
            u = UserState(wa_id, name or f"User {wa_id[-4:]}", user_id_for(wa_id))
            self.users[wa_id] = u
            self._users_by_bsuid[u.user_id] = u
        elif name:
            u.name = name
        return u

    def user_by_bsuid(self, user_id: str) -> UserState | None:
        return self._users_by_bsuid.get(user_id)

    def record(self, msg: OutboundMessage) -> None:
        self.outbound[msg.wamid] = msg
        self.send_log.append(msg)
        self.users[msg.wa_id].received.append(msg)

    def next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def sends_by_callback_data(self) -> dict[str | None, int]:
        counts: dict[str | None, int] = {}
        for m in self.send_log:
            counts[m.callback_data] = counts.get(m.callback_data, 0) + 1
        return counts
