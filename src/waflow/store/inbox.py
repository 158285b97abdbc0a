"""The inbox: every inbound webhook event, durable and deduplicated, in arrival (= id) order.

Dedup keys (`dedup_key` is UNIQUE; a redelivered webhook inserts nothing):

- a message: `msg:<provider message id>` (`message_dedup_key`)
- a status: `st:<provider message id>:<status>` (`status_dedup_key`)
- a template status update: `tpl:<template id>:<event>:<unix seconds | payload hash>`
- anything else (`error`, `other`): `<kind>:<sha256 of the payload's sorted-key JSON>`

States: `pending` (new) → `done`; a failed processing attempt makes it `failed` (to be retried,
still in order) until `max_attempts`, then `dead` (kept, skipped).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

import orjson
from sqlalchemy import Text, bindparam, case, cast, func, literal, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from waflow.canonical import EventKind, InboundMessage, StatusUpdate, TemplateStatusUpdate
from waflow.store.bulk import BulkInsert
from waflow.store.dialect import index_hint, is_postgres, one_of
from waflow.store.tables import inbound_events
from waflow.store.types import as_utc, utcnow

OPEN_STATES = ("pending", "failed")


def message_dedup_key(provider_message_id: str) -> str:
    return f"msg:{provider_message_id}"


def status_dedup_key(provider_message_id: str, status: str) -> str:
    return f"st:{provider_message_id}:{status}"


def payload_dedup_key(kind: str, payload: Any) -> str:
    digest = hashlib.sha256(orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)).hexdigest()
    return f"{kind}:{digest}"


@dataclass(frozen=True, slots=True)
class NewInboundEvent:
    """An inbound event to write to the inbox (`payload` is the canonical event as JSON)."""

    dedup_key: str
    kind: str
    phone_number_id: str | None
    payload: dict[str, Any]
    received_at: datetime
    provider: str = "cloud"
    contact_key: str | None = None
    provider_message_id: str | None = None

    @classmethod
    def from_message(cls, message: InboundMessage, received_at: datetime) -> NewInboundEvent:
        return cls(
            dedup_key=message_dedup_key(message.message_id),
            kind=EventKind.MESSAGE.value,
            phone_number_id=message.phone_number_id,
            payload=message.model_dump(mode="json"),
            received_at=received_at,
            provider=message.provider,
            contact_key=message.contact.key,
            provider_message_id=message.message_id,
        )

    @classmethod
    def from_status(cls, status: StatusUpdate, received_at: datetime) -> NewInboundEvent:
        return cls(
            dedup_key=status_dedup_key(status.message_id, status.status.value),
            kind=EventKind.STATUS.value,
            phone_number_id=status.phone_number_id,
            payload=status.model_dump(mode="json"),
            received_at=received_at,
            provider=status.provider,
            contact_key=status.recipient_id,
            provider_message_id=status.message_id,
        )

    @classmethod
    def from_template_status(cls, update: TemplateStatusUpdate, received_at: datetime) -> NewInboundEvent:
        payload = update.model_dump(mode="json")
        stamp = str(int(update.timestamp.timestamp())) if update.timestamp else payload_dedup_key("h", payload)
        return cls(
            dedup_key=f"tpl:{update.template_id}:{update.event}:{stamp}",
            kind=EventKind.TEMPLATE_STATUS.value,
            phone_number_id=None,
            payload=payload,
            received_at=received_at,
            provider=update.provider,
        )

    @classmethod
    def other(
        cls,
        kind: EventKind | str,
        payload: dict[str, Any],
        received_at: datetime,
        *,
        phone_number_id: str | None = None,
        provider: str = "cloud",
    ) -> NewInboundEvent:
        """An `error` / `other` event, deduplicated by its payload's content."""
        kind = EventKind(kind).value
        return cls(payload_dedup_key(kind, payload), kind, phone_number_id, payload, received_at, provider)

    def row(self) -> InboxRow:
        return InboxRow(
            self.dedup_key,
            self.kind,
            self.provider,
            self.phone_number_id,
            self.contact_key,
            self.provider_message_id,
            orjson.dumps(self.payload).decode(),
            self.received_at,
        )

    def params(self) -> dict[str, Any]:
        return {
            "dedup_key": self.dedup_key,
            "kind": self.kind,
            "provider": self.provider,
            "phone_number_id": self.phone_number_id,
            "contact_key": self.contact_key,
            "provider_message_id": self.provider_message_id,
            "payload": self.payload,
            "received_at": self.received_at,
            "state": "pending",
            "attempts": 0,
        }


class InboxRow(NamedTuple):
    """An inbox row ready to write: `payload_json` is the payload already serialised (orjson).

    The webhook endpoint builds these directly (one JSON encoding per event, no dict round trip);
    `NewInboundEvent.row()` makes one from the friendlier form.
    """

    dedup_key: str
    kind: str
    provider: str
    phone_number_id: str | None
    contact_key: str | None
    provider_message_id: str | None
    payload_json: str
    received_at: datetime


_INSERT = BulkInsert(
    inbound_events,
    [
        "dedup_key",
        "kind",
        "provider",
        "phone_number_id",
        "contact_key",
        "provider_message_id",
        "payload",
        "received_at",
    ],  # state and attempts: the server defaults (pending, 0)
    conflict=["dedup_key"],
    returning=["id", "dedup_key"],
)


@dataclass(frozen=True, slots=True)
class InboundEventRecord:
    id: int
    dedup_key: str
    kind: str
    provider: str
    phone_number_id: str | None
    contact_key: str | None
    provider_message_id: str | None
    payload: dict[str, Any]
    received_at: datetime
    state: str
    attempts: int
    processed_at: datetime | None
    error: str | None


_COLUMNS = [inbound_events.c[name] for name in InboundEventRecord.__slots__]


def _record(row: Any) -> InboundEventRecord:
    return InboundEventRecord(*row)  # positional: building `row._mapping` per row cost more than the row


# `take_open`'s UPDATE, built once with parameters (its construction and cache key were most of its cost).
# The open-state check is a CASE so that PostgreSQL looks the ids up in the primary key: with a plain
# `state IN ('pending', 'failed')` the planner matched the partial index `ix_inbound_events_open_by_kind` and
# walked all of it (every open event) to find a handful of ids. A NULL CASE rejects the row: same rows.
_TAKE_OPEN = (
    update(inbound_events)
    .where(
        inbound_events.c.id.in_(bindparam("ids", expanding=True)),
        text("CASE WHEN state IN ('pending', 'failed') THEN true END"),
    )
    .values(state="done", processed_at=bindparam("at", type_=inbound_events.c.processed_at.type), error=None)
    .returning(inbound_events.c.id)
)


class InboxRepository:
    async def insert_events(self, conn: AsyncConnection, rows: Sequence[NewInboundEvent]) -> list[int | None]:
        """Write `rows`, deduplicated by `dedup_key` (see `insert_rows`)."""
        return await self.insert_rows(conn, [row.row() for row in rows])

    async def insert_rows(self, conn: AsyncConnection, rows: Sequence[InboxRow]) -> list[int | None]:
        """Write `rows` in one bulk `INSERT ... ON CONFLICT (dedup_key) DO NOTHING` (one statement,
        one hop to the database thread on SQLite; see `waflow.store.bulk`).

        Returns, per row, the new event id, or None when its dedup key was already stored (or
        appeared earlier in `rows`).
        """
        if not rows:
            return []
        first: dict[str, int] = {}
        unique: list[InboxRow] = []
        for index, row in enumerate(rows):
            if row.dedup_key not in first:
                first[row.dedup_key] = index
                unique.append(row)
        ids = {key: id_ for id_, key in await _INSERT.run(conn, unique)}
        out: list[int | None] = [None] * len(rows)
        for key, index in first.items():
            out[index] = ids.get(key)
        return out

    async def get(self, conn: AsyncConnection, event_id: int) -> InboundEventRecord | None:
        row = (await conn.execute(select(*_COLUMNS).where(inbound_events.c.id == event_id))).first()
        return _record(row) if row else None

    async def claim_pending(
        self, conn: AsyncConnection, kind: EventKind | str | None = None, limit: int = 100
    ) -> list[InboundEventRecord]:
        """The oldest open (pending / failed) events, of `kind` if given, in id order.

        With a `kind` a partial index serves it; without one (the demo's tool) it walks the table in
        id order past every done event: fine for a small inbox, not for a hot path.

        On PostgreSQL the rows are locked `FOR UPDATE SKIP LOCKED` until the transaction ends, so
        concurrent workers take disjoint sets; process them and `mark_done` in the same transaction.
        """
        stmt = select(*_COLUMNS).where(inbound_events.c.state.in_(one_of(OPEN_STATES)))
        if kind is not None:
            stmt = stmt.where(inbound_events.c.kind == EventKind(kind).value)
        stmt = stmt.order_by(inbound_events.c.id).limit(limit)
        if is_postgres(conn):
            stmt = stmt.with_for_update(skip_locked=True)
        return [_record(row) for row in await conn.execute(stmt)]

    async def oldest_pending_status_at(self, conn: AsyncConnection) -> datetime | None:
        """When the oldest status event still waiting to be applied was received (None: all applied).

        The outbox resends a message whose first send has an unknown outcome only once every status received
        before its grace ended is applied: that status may be the one saying the first send went out. One
        probe of the first entry of the open-events-by-kind index."""
        stmt = (
            select(inbound_events.c.received_at)
            .where(
                inbound_events.c.state.in_(one_of(OPEN_STATES)),
                inbound_events.c.kind == EventKind.STATUS.value,
                inbound_events.c.state == "pending",  # a failed one is not coming: it does not hold resends
            )
            .order_by(inbound_events.c.id)
            .limit(1)
        )
        at = (await conn.execute(stmt)).scalar()
        return as_utc(at) if at is not None else None

    async def claim_payloads(
        self, conn: AsyncConnection, kind: EventKind | str, limit: int = 1000
    ) -> list[tuple[int, str]]:
        """`claim_pending` reduced to (id, payload as JSON text): the lean form a bulk consumer (the
        status processor) needs, without building a record (and parsing two timestamps) or even
        decoding the JSON (the processor keeps the text as the status's history) per row."""
        stmt = (
            select(inbound_events.c.id, cast(inbound_events.c.payload, Text))
            .where(inbound_events.c.state.in_(one_of(OPEN_STATES)), inbound_events.c.kind == EventKind(kind).value)
            .order_by(inbound_events.c.id)
            .limit(limit)
        )
        if is_postgres(conn):
            stmt = stmt.with_for_update(of=inbound_events, skip_locked=True)
        return [(row[0], row[1]) for row in await conn.execute(stmt)]

    async def take_open(self, conn: AsyncConnection, ids: Sequence[int], at: datetime | None = None) -> set[int]:
        """Mark those of `ids` that are still open (pending / failed) `done`; the ids it marked.

        This is how a consumer that already holds events in memory (the status processor, handed
        them by the webhook writer) claims them: an event another consumer took meanwhile is not
        returned, so it is not applied twice. On PostgreSQL the UPDATE waits for a concurrent
        claimer's row lock and then re-checks the state.
        """
        if not ids:
            return set()
        params = {"ids": list(ids), "at": as_utc(at) if at else utcnow()}
        return set((await conn.execute(_TAKE_OPEN, params)).scalars())

    async def pending_for_contact(
        self,
        conn: AsyncConnection,
        phone_number_id: str,
        contact_key: str,
        *,
        limit: int = 100,
        lock: bool = False,
    ) -> list[InboundEventRecord]:
        """Open events of one contact in id (= processing) order; `lock` takes row locks (PostgreSQL).

        SQLite is told the partial index: without statistics it may pick the contact's whole history
        (`ix_inbound_events_phone_number_id_contact_key_id`, as long as the contact is old) instead."""
        stmt = (
            index_hint(select(*_COLUMNS), inbound_events, "ix_inbound_events_open_by_contact")
            .where(
                inbound_events.c.phone_number_id == phone_number_id,
                inbound_events.c.contact_key == contact_key,
                inbound_events.c.state.in_(one_of(OPEN_STATES)),
            )
            .order_by(inbound_events.c.id)
            .limit(limit)
        )
        if lock and is_postgres(conn):
            stmt = stmt.with_for_update()
        return [_record(row) for row in await conn.execute(stmt)]

    async def mark_done(self, conn: AsyncConnection, ids: Sequence[int], at: datetime | None = None) -> int:
        if not ids:
            return 0
        result = await conn.execute(
            update(inbound_events)
            .where(inbound_events.c.id.in_(list(ids)))
            .values(state="done", processed_at=as_utc(at) if at else utcnow(), error=None)
        )
        return result.rowcount

    async def set_contact_keys(self, conn: AsyncConnection, pairs: Sequence[tuple[int, str]]) -> None:
        """File events (id, contact_key) under the key of the contact they belong to (one executemany)."""
        if pairs:
            stmt = (
                update(inbound_events)
                .where(inbound_events.c.id == bindparam("b_id"))
                .values(contact_key=bindparam("v_key"))
            )
            await conn.execute(stmt, [{"b_id": event_id, "v_key": key} for event_id, key in pairs])

    async def mark_failed(
        self, conn: AsyncConnection, event_id: int, error: str, *, max_attempts: int = 5, dead: bool = False
    ) -> str | None:
        """Count a failed attempt; the event becomes `dead` at `max_attempts` (or at once with `dead`).

        Returns the new state (None when no such event).
        """
        attempts = inbound_events.c.attempts + 1
        state = literal("dead") if dead else case((attempts >= max_attempts, "dead"), else_="failed")
        stmt = (
            update(inbound_events)
            .where(inbound_events.c.id == event_id)
            .values(attempts=attempts, state=state, error=error, processed_at=utcnow())
            .returning(inbound_events.c.state)
        )
        new_state: str | None = (await conn.execute(stmt)).scalar_one_or_none()
        return new_state

    async def counts(self, conn: AsyncConnection) -> dict[str, int]:
        """Events per state (for metrics)."""
        stmt = select(inbound_events.c.state, func.count()).group_by(inbound_events.c.state)
        return {state: count for state, count in await conn.execute(stmt)}
