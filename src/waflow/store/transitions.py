"""The status-tracking rule, as a pure function over one outbound message's status fields.

Statuses arrive out of order, twice, or contradicting each other; the message's row must end
up telling the truth without ever moving backwards:

1. The positive chain is `queued < accepted < sent < delivered < read < played`. A positive
   status advances the message only if it ranks above the current one; a lower or equal one
   is kept in the history and changes nothing but timestamps (rule 3).
2. `failed` is terminal. It applies over `queued`, `accepted` and `sent` (the message has not
   reached the phone), and then nothing moves the message again: `delivered` / `read` /
   `played` arriving after `failed` do not undo it. A `failed` arriving after the message is
   `delivered` (or read, played) is contradicted by proof of delivery: it is recorded in the
   history with its error, and the message keeps its status. A second `failed` keeps the
   first one's error. (For this contradictory pair the first to arrive wins; every other order
   of sent / delivered / read / played converges to the same result whatever the arrival order.)
3. Per-status timestamps (`sent_at`, `delivered_at`, `read_at`, `played_at`) hold the earliest
   time the provider reported that status *or a later one that implies it*: `read` implies
   delivered and sent, `played` implies read. A late `delivered` with an earlier time than the
   one implied by `read` replaces it. Once the message has failed only `sent_at` may still be
   filled in (a late `sent`), so a failed message never shows a delivery time.
4. `failed` keeps the error code, class and text on the message (`error_code`, `error_class`,
   `error_text`), and every status event keeps its own error in `status_events`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from waflow.canonical import DeliveryStatus

S = DeliveryStatus

# status -> the column holding its time; the positive statuses a status implies (itself included)
TIME_COLUMN: dict[DeliveryStatus, str] = {
    S.ACCEPTED: "accepted_at",
    S.SENT: "sent_at",
    S.DELIVERED: "delivered_at",
    S.READ: "read_at",
    S.PLAYED: "played_at",
    S.FAILED: "failed_at",
}
_IMPLIED: dict[DeliveryStatus, tuple[DeliveryStatus, ...]] = {
    S.SENT: (S.SENT,),
    S.DELIVERED: (S.SENT, S.DELIVERED),
    S.READ: (S.SENT, S.DELIVERED, S.READ),
    S.PLAYED: (S.SENT, S.DELIVERED, S.READ, S.PLAYED),
}
STATE_COLUMNS = (
    "id",
    "status",
    "provider_message_id",
    "accepted_at",
    "sent_at",
    "delivered_at",
    "read_at",
    "played_at",
    "failed_at",
    "error_code",
    "error_class",
    "error_text",
    "outcome_unknown_since",
)


@dataclass(slots=True)
class MessageState:
    """The status fields of one outbound message, as loaded; `dirty` once changed."""

    id: int
    status: DeliveryStatus
    provider_message_id: str | None = None
    accepted_at: datetime | None = None
    sent_at: datetime | None = None
    delivered_at: datetime | None = None
    read_at: datetime | None = None
    played_at: datetime | None = None
    failed_at: datetime | None = None
    error_code: int | None = None
    error_class: str | None = None
    error_text: str | None = None
    outcome_unknown_since: datetime | None = None
    phone_number_id: str | None = field(default=None, compare=False)  # read only: whose message (never written)
    dirty: bool = field(default=False, compare=False)

    def _earliest(self, column: str, at: datetime) -> None:
        current: datetime | None = getattr(self, column)
        if current is None or at < current:
            setattr(self, column, at)
            self.dirty = True

    def accept(self, provider_message_id: str, at: datetime) -> None:
        """The provider took the message (HTTP 200 with its id, or a status proving it)."""
        if self.provider_message_id != provider_message_id:
            self.provider_message_id = provider_message_id
            self.dirty = True
        if self.outcome_unknown_since is not None:
            self.outcome_unknown_since = None
            self.dirty = True
        self._earliest("accepted_at", at)
        if self.status == S.QUEUED:
            self.status = S.ACCEPTED
            self.dirty = True

    def fail(self, at: datetime, code: int | None, error_class: str | None, text: str | None) -> bool:
        """Apply `failed` (rule 2); True when the message became failed."""
        if self.status == S.FAILED or self.status.rank >= S.DELIVERED.rank:
            return False
        self.status = S.FAILED
        self.failed_at = at
        self.error_code = code
        self.error_class = error_class
        self.error_text = text
        self.outcome_unknown_since = None
        self.dirty = True
        return True

    def advance(self, status: DeliveryStatus, at: datetime) -> bool:
        """Apply a positive status (rules 1 and 3); True when the status moved forward."""
        if status == S.FAILED:
            raise ValueError("use fail() for failed")
        if self.status == S.FAILED:
            if status == S.SENT:  # being sent does not contradict failing later
                self._earliest("sent_at", at)
            return False
        if status == S.ACCEPTED:
            self._earliest("accepted_at", at)
        for implied in _IMPLIED.get(status, ()):
            self._earliest(TIME_COLUMN[implied], at)
        if status.rank > self.status.rank:
            self.status = status
            self.dirty = True
            return True
        return False

    def values(self) -> dict[str, object]:
        return {name: getattr(self, name) for name in STATE_COLUMNS if name != "id"}
