"""The consent rule: what may reach a contact who opted out. One rule, asked on every path.

A contact opts out by sending a stop word (the engine's `opt_out` command, STOP by default) or through
`POST /api/v1/contacts/{contact}/opt-out`, and opts in again by a start word (START) or `POST
/api/v1/contacts/{contact}/opt-in`; each change is recorded with how and by whom (`store.consent`).

While a contact is opted out, a message reaches them only when one of these holds:

- it answers them: the contact wrote to the business *after* the opt-out was recorded, that message's
  24 h window is still open, and the message is not part of a campaign. Writing again is the contact's
  choice to talk; it is not an opt-in (START is): once that window closes, nothing reaches them again
  until they write or opt in;
- it is the confirmation of the opt-out itself (the stop command's reply, sent in the same turn).

Everything else is refused with reason `opted_out`: campaigns, template sends and fallback templates
(they exist to reach a closed window), API sends and flows started from the API or by a timer outside
such a conversation. The outbox applies the rule to every row just before it would send it — whatever
path wrote the row and however long it waited — and the doors that can answer at once ask it too: the
API refuses a send (409 `opted_out`) and a flow start, so the caller hears it instead of finding a
failed row. A refused row is `failed` with `error_class='opted_out'`; a campaign counts it as skipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from waflow.store.contacts import ContactRecord, window_open_at
from waflow.store.tables import OPTED_OUT_CLASS

OPTED_OUT = OPTED_OUT_CLASS  # the error class of a refused row, the metric's outcome, the API's error code
# `node_id` of the stop command's confirmation; not a valid flow node id (no ':'), so no flow can claim it
OPT_OUT_NOTICE = "command:opt_out"


@dataclass(frozen=True, slots=True)
class Consent:
    """What the rule needs of a contact."""

    opted_out: bool
    opted_out_at: datetime | None = None
    last_inbound_at: datetime | None = None

    @classmethod
    def of(cls, contact: ContactRecord | None) -> Consent | None:
        if contact is None:
            return None
        return cls(contact.opted_out, contact.opted_out_at or contact.updated_at, contact.last_inbound_at)


def in_their_conversation(consent: Consent, now: datetime) -> bool:
    """The contact wrote after opting out and that message's 24 h window is open at `now`."""
    last, since = consent.last_inbound_at, consent.opted_out_at
    return last is not None and since is not None and last > since and window_open_at(last, now)


def refusal(consent: Consent | None, now: datetime, *, campaign: bool = False, notice: bool = False) -> str | None:
    """Why a message may not reach this contact at `now`; None when it may. `consent` None: an unknown
    contact (never wrote, never opted out). `campaign`: the row belongs to a bulk send. `notice`: the row is
    the stop command's confirmation."""
    if consent is None or not consent.opted_out:
        return None
    since = f" (since {consent.opted_out_at:%Y-%m-%d %H:%M:%S} UTC)" if consent.opted_out_at else ""
    if notice:
        return None
    if campaign:
        return f"the contact opted out{since}: campaigns skip them until they opt in again"
    if in_their_conversation(consent, now):
        return None
    return (
        f"the contact opted out{since}: nothing is sent to them until they opt in again (START, or POST "
        "/api/v1/contacts/{contact}/opt-in), except answers within 24 h of a message they send"
    )
