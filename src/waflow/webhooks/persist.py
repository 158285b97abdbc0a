"""What one inbox transaction writes for a list of webhook requests (the only module here that
knows the store's repositories).

For each accepted webhook: its events as inbox rows (deduplicated by `dedup_key`, inside the
batch and against the table), the contacts that wrote in (profile name, `last_inbound_at` for
the 24 h window), and — when statuses are applied inline — the new delivery statuses, applied
through `StatusRepository.apply_many` and their rows marked done. For a body that did not
parse: a dead letter with the raw bytes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection

from waflow.canonical import ContactRef, EventKind, InboundMessage, StatusUpdate
from waflow.providers.cloud import ParsedEvent, ParsedWebhook
from waflow.store import Store
from waflow.store.inbox import InboxRow


@dataclass(frozen=True, slots=True)
class InboxRequest:
    """An accepted, parsed webhook."""

    parsed: ParsedWebhook
    received_at: datetime

    @property
    def size(self) -> int:
        return max(1, len(self.parsed.events))


@dataclass(frozen=True, slots=True)
class DeadLetterRequest:
    """A signed body that could not be parsed: kept raw."""

    body: bytes
    reason: str
    headers: Mapping[str, str]
    phone_number_id: str | None
    received_at: datetime

    @property
    def size(self) -> int:
        return 1


WriteRequest = InboxRequest | DeadLetterRequest


class PendingStatus(NamedTuple):
    """A status event just stored `pending`: its inbox id, the parsed event and the JSON stored
    (handed to the `StatusProcessor` so it need not read and parse it back)."""

    event_id: int
    update: StatusUpdate
    payload_json: str


@dataclass(slots=True)
class WriteOutcome:
    new: int = 0
    duplicate: int = 0
    by_kind: dict[tuple[str, bool], int] = field(default_factory=dict)  # (kind, new) → count
    statuses: list[PendingStatus] = field(default_factory=list)  # new status events left pending


def _row(ev: ParsedEvent, received_at: datetime) -> InboxRow:
    # the payload is serialised once, here, straight from the parser's JSON-ready dict
    return InboxRow(
        ev.dedup_key,
        ev.kind.value,
        ev.provider,
        ev.phone_number_id,  # None for WABA-level fields (template updates, account, ...)
        ev.contact_key,
        ev.provider_message_id,
        orjson.dumps(ev.payload).decode(),
        received_at,
    )


async def write_requests(
    store: Store, conn: AsyncConnection, requests: Sequence[WriteRequest], *, apply_statuses: bool
) -> list[WriteOutcome]:
    """Write `requests` on `conn` (one open transaction); one outcome per request, in order."""
    outcomes = [WriteOutcome() for _ in requests]
    rows: list[InboxRow] = []
    owners: list[tuple[int, ParsedEvent]] = []
    seen: set[str] = set()
    for i, request in enumerate(requests):
        if isinstance(request, DeadLetterRequest):
            await store.dead_letters.add(
                conn,
                body=request.body,
                reason=request.reason,
                headers=dict(request.headers),
                phone_number_id=request.phone_number_id,
                received_at=request.received_at,
            )
            continue
        for ev in request.parsed.events:
            if ev.dedup_key in seen:
                _count(outcomes[i], ev.kind, new=False)
                continue
            seen.add(ev.dedup_key)
            rows.append(_row(ev, request.received_at))
            owners.append((i, ev))
    if not rows:
        return outcomes
    ids = await store.inbox.insert_rows(conn, rows)
    statuses: list[StatusUpdate] = []
    applied_ids: list[int] = []
    applied_json: list[str] = []
    contacts: dict[tuple[str, str], tuple[ContactRef, datetime]] = {}
    for (i, ev), row, row_id in zip(owners, rows, ids, strict=True):
        _count(outcomes[i], ev.kind, new=row_id is not None)
        if row_id is None:
            continue
        if ev.kind is EventKind.STATUS and isinstance(ev.event, StatusUpdate):
            if apply_statuses:
                statuses.append(ev.event)
                applied_ids.append(row_id)
                applied_json.append(row.payload_json)
            else:
                outcomes[i].statuses.append(PendingStatus(row_id, ev.event, row.payload_json))
        elif ev.kind is EventKind.MESSAGE and isinstance(ev.event, InboundMessage):
            msg = ev.event
            key = (msg.phone_number_id, msg.contact.key)
            known = contacts.get(key)
            if known is None or known[1] <= msg.timestamp:
                contacts[key] = (msg.contact, msg.timestamp)
    for (pnid, _key), (contact, at) in contacts.items():
        await store.contacts.upsert_from_inbound(conn, pnid, contact, at)
    if statuses:
        await store.statuses.apply_many(conn, statuses, raw_json=applied_json)
        await store.inbox.mark_done(conn, applied_ids, at=requests[0].received_at)
    return outcomes


def _count(outcome: WriteOutcome, kind: EventKind, *, new: bool) -> None:
    if new:
        outcome.new += 1
    else:
        outcome.duplicate += 1
    key = (kind.value, new)
    outcome.by_kind[key] = outcome.by_kind.get(key, 0) + 1


__all__ = ["DeadLetterRequest", "InboxRequest", "PendingStatus", "WriteOutcome", "WriteRequest", "write_requests"]
