"""Status tracking: apply delivery-status webhooks to outbound messages (rule: `transitions`).

A status is matched to its outbound message by provider message id (wamid). When that id is
not known yet — the webhook overtook the send call's answer, or the process crashed between
sending and recording — the status is matched by `callback_data`, which waflow sets on every
send to `wf:<outbox id>` (`build_callback_data` / `parse_callback_data`); the message then
learns its wamid from the status. A status matching neither is *held*: kept in
`status_events` with `outbound_id` NULL, and applied when `OutboxRepository.record_accepted`
records that wamid (or by `adopt_held`, a sweep that catches up after the fact).

Every status, applied or not, is recorded in `status_events` with the provider's timestamp,
its error, its callback data and the raw canonical event: the message's history.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

import orjson
from sqlalchemy import bindparam, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from waflow.canonical import DeliveryStatus, ErrorDetail, StatusUpdate
from waflow.store.bulk import BulkInsert, sqlite_call, sqlite_ts
from waflow.store.dialect import LOCK_CLASS_WAMID, lock_keys, locking
from waflow.store.tables import outbound_messages, status_events
from waflow.store.transitions import STATE_COLUMNS, MessageState
from waflow.store.types import UTCDateTime, as_utc, utcnow

CALLBACK_PREFIX = "wf:"

Classifier = Callable[[int], str | None]
"""Maps a provider error code to an error class (e.g. `cloudapi.errors` lookup); optional."""


def build_callback_data(outbound_id: int) -> str:
    """The `biz_opaque_callback_data` waflow sends with outbox message `outbound_id`: `wf:<id>`."""
    return f"{CALLBACK_PREFIX}{outbound_id}"


def parse_callback_data(value: str | None) -> int | None:
    """The outbox id in callback data built by `build_callback_data`, else None."""
    if not value or not value.startswith(CALLBACK_PREFIX):
        return None
    digits = value[len(CALLBACK_PREFIX) :]
    if not digits.isdigit() or len(digits) > 18:
        return None
    return int(digits)


class StatusOutcome(enum.StrEnum):
    ADVANCED = "advanced"  # the message's status moved forward (or became failed)
    RECORDED = "recorded"  # matched and kept in the history; the status did not move
    HELD = "held"  # no message with this id yet: kept, applied when the id is recorded
    FOREIGN = "foreign"  # the message with this id is another number's: kept in the history, never applied


class AppliedResult(NamedTuple):
    # a NamedTuple, not a frozen dataclass: one is built per applied status, and a frozen
    # dataclass's __init__ (object.__setattr__ per field) showed in the status processor's profile
    event_id: int  # the status_events row
    outbound_id: int | None
    outcome: StatusOutcome
    status: DeliveryStatus | None  # the message's status afterwards
    previous: DeliveryStatus | None  # the message's status before this event


@dataclass(frozen=True, slots=True)
class StatusEventRecord:
    id: int
    outbound_id: int | None
    provider_message_id: str
    status: str
    occurred_at: datetime
    recorded_at: datetime
    error_code: int | None
    error_title: str | None
    error_details: str | None
    callback_data: str | None
    raw: dict[str, Any] | None
    applied: bool
    advanced: bool
    phone_number_id: str | None = None  # the number the status webhook named (revision 0009)


EVENT_COLUMNS = [status_events.c[name] for name in StatusEventRecord.__slots__]
_EVENT_INSERT = BulkInsert(
    status_events,
    [
        "outbound_id",
        "provider_message_id",
        "status",
        "occurred_at",
        "recorded_at",
        "error_code",
        "error_title",
        "error_details",
        "callback_data",
        "raw",
        "applied",
        "advanced",
        "phone_number_id",
    ],
)
# the status fields, then the message's number (read to scope statuses to it, never written back)
_STATE_SELECT = [*(outbound_messages.c[name] for name in STATE_COLUMNS), outbound_messages.c.phone_number_id]


def error_text(error: ErrorDetail) -> str:
    parts = [part for part in (error.title or error.message, error.details) if part]
    return ": ".join(parts) if parts else f"error {error.code}"


def _state(row: Any) -> MessageState:
    # positional, in STATE_COLUMNS order (id, status, ...) then the number: cheaper than `row._mapping`
    state = MessageState(row[0], DeliveryStatus(row[1]), *row[2:-1])
    state.phone_number_id = row[-1]
    return state


def _ours(state: MessageState, phone_number_id: str | None) -> bool:
    """A status names the number that sent the message (older held rows without a number: not judged)."""
    return phone_number_id is None or state.phone_number_id == phone_number_id


async def load_states(
    conn: AsyncConnection, *, ids: Iterable[int] = (), wamids: Iterable[str] = ()
) -> list[MessageState]:
    """Status fields of the outbound messages with these ids or wamids, locked for update."""
    ids, wamids = list(ids), list(wamids)
    if not ids and not wamids:
        return []
    column = outbound_messages.c.id if ids else outbound_messages.c.provider_message_id
    stmt = select(*_STATE_SELECT).where(column.in_(ids or wamids)).order_by(outbound_messages.c.id)
    return [_state(row) for row in await conn.execute(locking(conn, stmt))]


async def write_states(
    conn: AsyncConnection, states: Iterable[MessageState], extra: dict[str, Any] | None = None
) -> None:
    """Write back the states that changed (one executemany UPDATE).

    The outbox counters and head markers follow from the triggers of revision 0006 (a status leaving
    `queued` promotes the recipient's next row; every status change moves one count), on this path and on
    the raw sqlite3 one below alike."""
    changed = [state for state in states if state.dirty or extra]
    if not changed:
        return
    now = utcnow()
    if conn.dialect.name == "sqlite" and not extra:
        await _write_states_sqlite(conn, changed, now)
    else:
        params = [{"b_id": state.id, **state.values(), "updated_at": now, **(extra or {})} for state in changed]
        names = [name for name in params[0] if name != "b_id"]
        stmt = (
            update(outbound_messages)
            .where(outbound_messages.c.id == bindparam("b_id"))
            .values({name: bindparam(name) for name in names})
        )
        await conn.execute(stmt, params)
    for state in changed:
        state.dirty = False


_STATE_WRITE_COLUMNS = [name for name in STATE_COLUMNS if name != "id"]
_SQLITE_STATE_UPDATE = (
    f"UPDATE {outbound_messages.name} SET "
    + ", ".join(f"{name} = ?" for name in [*_STATE_WRITE_COLUMNS, "updated_at"])
    + " WHERE id = ?"
)
_TIMESTAMP_COLUMNS = frozenset(
    name for name in _STATE_WRITE_COLUMNS if isinstance(outbound_messages.c[name].type, UTCDateTime)
)


def _sqlite_value(name: str, value: Any) -> Any:
    if name in _TIMESTAMP_COLUMNS:
        return sqlite_ts(value)
    return value.value if isinstance(value, DeliveryStatus) else value


async def _write_states_sqlite(conn: AsyncConnection, states: Sequence[MessageState], now: datetime) -> None:
    # SQLAlchemy's executemany binds ~13 values a row through type processors (~6 µs a status in
    # the status processor's profile); here the row is built as SQLite stores it, in one hop.
    stamp = sqlite_ts(now)
    rows = [
        (*(_sqlite_value(name, getattr(s, name)) for name in _STATE_WRITE_COLUMNS), stamp, s.id) for s in states
    ]
    await sqlite_call(conn, lambda db: db.executemany(_SQLITE_STATE_UPDATE, rows))


def _apply(state: MessageState, status: DeliveryStatus, at: datetime, error: ErrorDetail | None, cls: Any) -> bool:
    if status == DeliveryStatus.FAILED:
        code = error.code if error else None
        return state.fail(
            at, code, cls(code) if cls and code is not None else None, error_text(error) if error else None
        )
    if status == DeliveryStatus.QUEUED:
        return False
    return state.advance(status, at)


async def adopt_held(
    conn: AsyncConnection, states: Sequence[MessageState], classify: Classifier | None = None
) -> list[AppliedResult]:
    """Apply held statuses (in arrival order) to `states`, whose wamids are now known.

    The caller holds the wamid locks and writes `states` back afterwards.
    """
    by_wamid = {state.provider_message_id: state for state in states if state.provider_message_id}
    if not by_wamid:
        return []
    stmt = (
        select(*EVENT_COLUMNS)
        .where(status_events.c.outbound_id.is_(None), status_events.c.provider_message_id.in_(list(by_wamid)))
        .order_by(status_events.c.id)
    )
    rows = [StatusEventRecord(**row._mapping) for row in await conn.execute(locking(conn, stmt))]
    results: list[AppliedResult] = []
    params: list[dict[str, Any]] = []
    for event in rows:
        state = by_wamid[event.provider_message_id]
        if not _ours(state, event.phone_number_id):
            continue  # another number's status for this id: stays unapplied (the sweep's join skips it too)
        previous = state.status
        error = None
        if event.error_code is not None:
            error = ErrorDetail(code=event.error_code, title=event.error_title or "", details=event.error_details or "")
        advanced = _apply(state, DeliveryStatus(event.status), event.occurred_at, error, classify)
        params.append({"b_id": event.id, "outbound_id": state.id, "applied": True, "advanced": advanced})
        outcome = StatusOutcome.ADVANCED if advanced else StatusOutcome.RECORDED
        results.append(AppliedResult(event.id, state.id, outcome, state.status, previous))
    if params:
        await conn.execute(
            update(status_events)
            .where(status_events.c.id == bindparam("b_id"))
            .values(outbound_id=bindparam("outbound_id"), applied=bindparam("applied"), advanced=bindparam("advanced")),
            params,
        )
    return results


class StatusRepository:
    async def apply(
        self, conn: AsyncConnection, update_: StatusUpdate, *, classify: Classifier | None = None
    ) -> AppliedResult:
        """Apply one status (see the module docstring and `transitions` for the rule)."""
        return (await self.apply_many(conn, [update_], classify=classify))[0]

    async def apply_many(
        self,
        conn: AsyncConnection,
        updates: Sequence[StatusUpdate],
        *,
        classify: Classifier | None = None,
        raw_json: Sequence[str] | None = None,
    ) -> list[AppliedResult]:
        """Apply statuses in the given order (the inbox's); one result per update, same order.

        Statements per call, whatever the batch size: one SELECT of the messages (plus one by
        outbox id for callback-data matches), one bulk INSERT of the history rows, one
        executemany UPDATE of the messages that changed. `raw_json`, when given, is each
        update's canonical JSON (`model_dump(mode="json")`) already serialised — the inbox
        payload the caller read — so it is not rebuilt here.
        """
        if not updates:
            return []
        if raw_json is not None and len(raw_json) != len(updates):
            raise ValueError("raw_json needs one entry per update")
        await lock_keys(conn, LOCK_CLASS_WAMID, (u.message_id for u in updates))
        states: dict[str, MessageState] = {}
        for state in await load_states(conn, wamids={u.message_id for u in updates}):
            assert state.provider_message_id is not None
            states[state.provider_message_id] = state

        # Unknown wamid: match by callback data (`wf:<outbox id>`) when that row has no wamid yet.
        by_callback = {
            u.message_id: oid
            for u in updates
            if u.message_id not in states and (oid := parse_callback_data(u.callback_data)) is not None
        }
        if by_callback:
            by_id = {state.id: state for state in await load_states(conn, ids=set(by_callback.values()))}
            newly_known: list[MessageState] = []
            for wamid, oid in by_callback.items():
                found = by_id.get(oid)
                if found is None or found.provider_message_id not in (None, wamid):
                    continue
                if not all(_ours(found, u.phone_number_id) for u in updates if u.message_id == wamid):
                    continue
                if any(known is found for known in newly_known):
                    continue
                first = min(u.timestamp for u in updates if u.message_id == wamid)
                found.accept(wamid, as_utc(first))
                states[wamid] = found
                newly_known.append(found)
            await adopt_held(conn, newly_known, classify)

        now = utcnow()
        results: list[tuple[int | None, StatusOutcome, DeliveryStatus | None, DeliveryStatus | None]] = []
        rows: list[tuple[Any, ...]] = []
        for index, u in enumerate(updates):
            at = as_utc(u.timestamp)
            error = u.errors[0] if u.errors else None
            matched = states.get(u.message_id)
            advanced = False
            if matched is not None and not _ours(matched, u.phone_number_id):
                # signed by the app of another number than the message's: never applied to it (kept unmatched,
                # like a held status, whose adoption checks the number too)
                results.append((None, StatusOutcome.FOREIGN, None, None))
                matched = None
            elif matched is None:
                results.append((None, StatusOutcome.HELD, None, None))
            else:
                previous = matched.status
                advanced = _apply(matched, u.status, at, error, classify)
                outcome = StatusOutcome.ADVANCED if advanced else StatusOutcome.RECORDED
                results.append((matched.id, outcome, matched.status, previous))
            rows.append(
                (
                    matched.id if matched else None,
                    u.message_id,
                    u.status.value,
                    at,
                    now,
                    error.code if error else None,
                    (error.title or error.message) if error else None,
                    error.details if error else None,
                    u.callback_data,
                    raw_json[index] if raw_json is not None else orjson.dumps(u.model_dump(mode="json")).decode(),
                    matched is not None,
                    advanced,
                    u.phone_number_id,
                )
            )
        event_ids = [r[0] for r in await _EVENT_INSERT.run(conn, rows)]
        await write_states(conn, {id(s): s for s in states.values()}.values())
        return [
            AppliedResult(event_id, oid, outcome, status, previous)
            for event_id, (oid, outcome, status, previous) in zip(event_ids, results, strict=True)
        ]

    async def history(self, conn: AsyncConnection, outbound_id: int) -> list[StatusEventRecord]:
        """Every status event of one message, in arrival order."""
        stmt = select(*EVENT_COLUMNS).where(status_events.c.outbound_id == outbound_id).order_by(status_events.c.id)
        return [StatusEventRecord(**row._mapping) for row in await conn.execute(stmt)]

    async def held(self, conn: AsyncConnection, limit: int = 100) -> list[StatusEventRecord]:
        """Statuses still waiting for their message id to be recorded, oldest first."""
        stmt = (
            select(*EVENT_COLUMNS)
            .where(status_events.c.outbound_id.is_(None))
            .order_by(status_events.c.id)
            .limit(limit)
        )
        return [StatusEventRecord(**row._mapping) for row in await conn.execute(stmt)]

    async def adopt_held(
        self, conn: AsyncConnection, *, limit: int = 500, classify: Classifier | None = None
    ) -> list[AppliedResult]:
        """Sweep: apply held statuses whose wamid has been recorded since (a safety net)."""
        stmt = (
            select(status_events.c.provider_message_id)
            .join(outbound_messages, outbound_messages.c.provider_message_id == status_events.c.provider_message_id)
            .where(
                status_events.c.outbound_id.is_(None),
                # another number's status for that id is never adopted (revision 0009; NULL: older rows)
                or_(
                    status_events.c.phone_number_id.is_(None),
                    status_events.c.phone_number_id == outbound_messages.c.phone_number_id,
                ),
            )
            .distinct()
            .limit(limit)
        )
        wamids = sorted((await conn.execute(stmt)).scalars())
        if not wamids:
            return []
        await lock_keys(conn, LOCK_CLASS_WAMID, wamids)
        states = await load_states(conn, wamids=wamids)
        results = await adopt_held(conn, states, classify)
        await write_states(conn, states)
        return results


__all__ = [
    "CALLBACK_PREFIX",
    "AppliedResult",
    "Classifier",
    "StatusEventRecord",
    "StatusOutcome",
    "StatusRepository",
    "build_callback_data",
    "parse_callback_data",
]
