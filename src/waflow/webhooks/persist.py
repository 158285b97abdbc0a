"""What one inbox transaction writes for a list of webhook requests (the only module here that
knows the store's repositories).

For each accepted webhook: its events as inbox rows (deduplicated by `dedup_key`, inside the
batch and against the table), the contacts that wrote in (profile name, `last_inbound_at` for
the 24 h window), and — when statuses are applied inline — the new delivery statuses, applied
through `StatusRepository.apply_many` and their rows marked done. For a body that did not
parse: a dead letter with the raw bytes; for an accepted body some of whose updates did not
parse: its events as above plus one dead letter per rejected fragment, in the same transaction
(so its 200 means both are durable). A redelivered dead letter counts a copy of its row.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection

from waflow.canonical import ContactRef, EventKind, InboundMessage, StatusUpdate, TemplateStatusUpdate
from waflow.providers.cloud import ParsedEvent, ParsedWebhook
from waflow.store import Store
from waflow.store.inbox import InboxRow
from waflow.webhooks import metrics


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
    """A signed body that could not be parsed, kept raw; or, with `place`, one rejected fragment
    of a body (`RejectedFragment.body`, found at `place`)."""

    body: bytes
    reason: str
    headers: Mapping[str, str]
    phone_number_id: str | None
    received_at: datetime
    place: str | None = None

    @property
    def size(self) -> int:
        return 1


@dataclass(frozen=True, slots=True)
class PartialRequest:
    """An accepted webhook some of whose updates were rejected: its events (as `InboxRequest`)
    and one dead letter per rejected fragment, written in one transaction."""

    parsed: ParsedWebhook
    received_at: datetime
    letters: tuple[DeadLetterRequest, ...]

    @property
    def size(self) -> int:
        return max(1, len(self.parsed.events) + len(self.letters))


WriteRequest = InboxRequest | PartialRequest | DeadLetterRequest


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
        _json_text(ev.payload),
        received_at,
    )


def _json_text(payload: object) -> str:
    try:
        return orjson.dumps(payload).decode()
    except TypeError:  # nested deeper than orjson writes (254 levels): the standard library goes further
        return json.dumps(payload, ensure_ascii=False, separators=(",", ":"))


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
            await _dead_letter(store, conn, request)
            continue
        if isinstance(request, PartialRequest):
            for letter in request.letters:
                await _dead_letter(store, conn, letter)
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
    messages: list[tuple[int, tuple[str, str]]] = []  # (event id, (number, the sender's key as parsed))
    template_updates: list[TemplateStatusUpdate] = []
    archived: list[int] = []  # events no part waits for: done as they are stored (no kind stays pending)
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
        elif ev.kind is EventKind.TEMPLATE_STATUS and isinstance(ev.event, TemplateStatusUpdate):
            template_updates.append(ev.event)  # applied to the templates table below, in this transaction
            archived.append(row_id)
        elif ev.kind in (EventKind.ERROR, EventKind.OTHER):
            archived.append(row_id)  # kept for the record; nothing consumes them, so they are done at once
        elif ev.kind is EventKind.MESSAGE and isinstance(ev.event, InboundMessage):
            msg = ev.event
            key = (msg.phone_number_id, msg.contact.key)
            messages.append((row_id, key))
            known = contacts.get(key)
            if known is None or known[1] <= msg.timestamp:
                contacts[key] = (msg.contact, msg.timestamp)
    if contacts:
        resolved = await store.contacts.upsert_many(
            conn, [(pnid, contact, at) for (pnid, _key), (contact, at) in contacts.items()]
        )
        # a message is filed under the key of the contact it belongs to, which differs from the id it
        # carries when the person was first known by their other id (or merged)
        refiled = [
            (row_id, resolved[key].contact_key) for row_id, key in messages if resolved[key].contact_key != key[1]
        ]
        if refiled:
            await store.inbox.set_contact_keys(conn, refiled)
    if statuses:
        metrics.note_foreign(await store.statuses.apply_many(conn, statuses, raw_json=applied_json))
        await store.inbox.mark_done(conn, applied_ids, at=requests[0].received_at)
    for template_update in template_updates:
        await store.templates.apply_status(conn, template_update)
    if archived:
        await store.inbox.mark_done(conn, archived, at=requests[0].received_at)
    return outcomes


async def _dead_letter(store: Store, conn: AsyncConnection, request: DeadLetterRequest) -> None:
    await store.dead_letters.add(
        conn,
        body=request.body,
        reason=request.reason,
        headers=dict(request.headers),
        phone_number_id=request.phone_number_id,
        received_at=request.received_at,
        place=request.place,
    )


def _count(outcome: WriteOutcome, kind: EventKind, *, new: bool) -> None:
    if new:
        outcome.new += 1
    else:
        outcome.duplicate += 1
    key = (kind.value, new)
    outcome.by_kind[key] = outcome.by_kind.get(key, 0) + 1


__all__ = [
    "DeadLetterRequest",
    "InboxRequest",
    "PartialRequest",
    "PendingStatus",
    "WriteOutcome",
    "WriteRequest",
    "write_requests",
]
