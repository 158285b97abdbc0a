"""An engine batch's reads and writes, in as few statements (SQLite: as few thread hand-offs) as possible.

What bounds the engine on SQLite is not the flow work but the statements around it: each SQLAlchemy
statement is several hand-offs to aiosqlite's thread (cursor, execute, fetch, close), and each one
waits for a turn of the event loop while the batch holds the single write lock. Three statements per
event (contact, session, update) were ~70% of the batch time in the `bench.engine_flow` profile. So:

- `load_batch`: ONE statement reads the open events with, per event, its contact and the contact's
  active session (LEFT JOINs on the unique keys), instead of two lookups per event;
- `write_batch`: the batch's session UPDATEs (deferred by `SessionBook`), its outbound rows and the
  `done` marks go to the database together — on SQLite in ONE hand-off to aiosqlite's thread (plain
  `sqlite3` executemany inside the batch's transaction, as `waflow.store.bulk` does for the inbox);
  on PostgreSQL as three statements.

Marking done still refuses to mark an event that is not open any more (`AlreadyApplied` rolls the
whole transaction back): the double-apply guard holds however the batch was read.

Fair rounds (`pick_fair`, `load_window`, `load_batch_ids`, `shed_backlog`): when one contact has more events
waiting than its share of a round, the round is chosen from a window of the oldest open events — each contact
at most `share` of them, the oldest first — so one contact's backlog is worked through in turn with everyone
else's instead of ahead of it; and a contact with more than its backlog cap of messages waiting has the newest
beyond the cap set aside (`dead`, with the reason as `error`).
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import JSON, Boolean, Integer, Select, and_, bindparam, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from waflow.engine.runtime.state import DEFERRED_KEYS, SQLITE_DEFERRED_UPDATE, SessionBook, SessionState
from waflow.engine.runtime.turn import flush_outbox
from waflow.store.bulk import sqlite_call, sqlite_ts
from waflow.store.contacts import ContactRecord
from waflow.store.dialect import const
from waflow.store.inbox import InboundEventRecord
from waflow.store.tables import ENGINE_OPEN_EVENTS, contacts, inbound_events, outbound_messages, sessions
from waflow.store.types import UTCDateTime

GroupKey = tuple[str, str]

_EVENT_FIELDS = InboundEventRecord.__slots__
_CONTACT_FIELDS = ContactRecord.__slots__
_SESSION_FIELDS = (
    "id", "contact_id", "flow_id", "flow_version", "state", "current_node", "vars", "waiting_for", "step_count",
    "started_at", "updated_at", "runtime", "last_error", "expires_at",
)  # fmt: skip
_C0 = len(_EVENT_FIELDS)
_S0 = _C0 + len(_CONTACT_FIELDS)


class AlreadyApplied(RuntimeError):
    """An event was done before this transaction marked it: the transaction must not commit."""


# The open-state check of the `done` marks, in a form PostgreSQL's planner cannot match to a partial index's
# `state IN ('pending', 'failed')`: with the plain IN it walked all of `ix_inbound_events_open_by_kind` (every
# open event: 210 buffers for 5 ids in `bench.engine_flow`) to find the ids; like this it looks the ids up in
# the primary key and checks the state of those rows only. Same rows either way (a NULL CASE rejects the row).
OPEN_BY_ID = "CASE WHEN state IN ('pending', 'failed') THEN true END"

# built once with parameters: building the UPDATE and its cache key per call cost more than running it
_DONE = (
    update(inbound_events)
    .where(inbound_events.c.id.in_(bindparam("ids", expanding=True)), text(OPEN_BY_ID))
    .values(state="done", error=None, processed_at=bindparam("at", type_=inbound_events.c.processed_at.type))
)


async def mark_done(conn: AsyncConnection, ids: list[int], at: datetime) -> None:
    """Mark applied events done — only open ones; if any was not open, roll everything back (never twice)."""
    if not ids:
        return
    result = await conn.execute(_DONE, {"ids": ids, "at": at})
    if result.rowcount != len(ids):
        raise AlreadyApplied(f"{len(ids) - result.rowcount} of events {ids[:5]}... were already applied")


@dataclass(slots=True)
class Batch:
    """Open events in id order, with what `load_batch` found for their contacts."""

    events: list[InboundEventRecord]
    contacts: dict[GroupKey, ContactRecord]  # by the events' (phone_number_id, contact_key)
    sessions: dict[int, SessionState | None]  # contact id → its active session (None: it has none)


def _joined(ev: Any) -> Select[Any]:
    """The events of the subquery `ev` with, per event, its contact and the contact's active session."""
    joined = ev.outerjoin(
        contacts, and_(contacts.c.phone_number_id == ev.c.phone_number_id, contacts.c.contact_key == ev.c.contact_key)
    ).outerjoin(sessions, and_(sessions.c.contact_id == contacts.c.id, sessions.c.state != const("ended")))
    columns = [
        *(ev.c[name] for name in _EVENT_FIELDS),
        *(contacts.c[name].label(f"c_{name}") for name in _CONTACT_FIELDS),
        *(sessions.c[name].label(f"s_{name}") for name in _SESSION_FIELDS),
    ]
    return select(*columns).select_from(joined).order_by(ev.c.id)


@functools.lru_cache(maxsize=8)
def _batch_query(limit: int) -> Select[Any]:
    ev = (
        select(*(inbound_events.c[name] for name in _EVENT_FIELDS))
        .where(text(ENGINE_OPEN_EVENTS))
        .order_by(inbound_events.c.id)
        .limit(limit)
        .subquery("e")
    )
    return _joined(ev)


_BATCH_BY_IDS = _joined(
    select(*(inbound_events.c[name] for name in _EVENT_FIELDS))
    .where(inbound_events.c.id.in_(bindparam("ids", expanding=True)), text(ENGINE_OPEN_EVENTS))
    .subquery("e")
)


async def load_batch(conn: AsyncConnection, limit: int) -> Batch:
    """The oldest `limit` open engine events, their contacts (filed under the event's key) and those contacts'
    active sessions, in one statement. A contact found under another of its ids, or not yet created, is not
    in `contacts`: the worker looks it up the slow way (`lock_contact`)."""
    return _read_batch(await conn.execute(_batch_query(limit)))


async def load_batch_ids(conn: AsyncConnection, ids: list[int]) -> Batch:
    """Like `load_batch`, for these events (those still open), in id order: a fair round's pick."""
    if not ids:
        return Batch([], {}, {})
    return _read_batch(await conn.execute(_BATCH_BY_IDS, {"ids": ids}))


def _read_batch(rows: Any) -> Batch:
    batch = Batch([], {}, {})
    for row in rows:
        event = InboundEventRecord(*row[:_C0])
        batch.events.append(event)
        if row[_C0] is None:
            continue
        key = (event.phone_number_id or "", event.contact_key or "")
        if key in batch.contacts:
            continue
        contact = ContactRecord(*row[_C0:_S0])
        batch.contacts[key] = contact
        if row[_S0] is None:
            batch.sessions[contact.id] = None
            continue
        values = dict(zip(_SESSION_FIELDS, row[_S0:], strict=True))
        values["vars"] = dict(values["vars"] or {})
        values["runtime"] = dict(values["runtime"] or {})
        batch.sessions[contact.id] = SessionState(**values)
    return batch


# ---- fair rounds ----

# the partial WHERE of `ix_inbound_events_open_by_contact`, as text (a bound state proves nothing to SQLite)
_OPEN = "state IN ('pending', 'failed')"


@dataclass(frozen=True, slots=True)
class WindowRow:
    """An open engine event as a fair round sees it: id, contact, kind."""

    id: int
    key: GroupKey
    kind: str


@functools.lru_cache(maxsize=8)
def _window_query(limit: int) -> Select[Any]:
    return (
        select(*(inbound_events.c[name] for name in ("id", "phone_number_id", "contact_key", "kind")))
        .where(text(ENGINE_OPEN_EVENTS))
        .order_by(inbound_events.c.id)
        .limit(limit)
    )


async def load_window(conn: AsyncConnection, limit: int) -> list[WindowRow]:
    """The oldest `limit` open engine events, light (no payload): what a fair round chooses from."""
    return [
        WindowRow(row.id, (row.phone_number_id or "", row.contact_key or ""), row.kind)
        for row in await conn.execute(_window_query(limit))
    ]


@dataclass(slots=True)
class FairPick:
    """A round's events: ids in id order, how many per contact, and the contacts with events left over."""

    ids: list[int] = field(default_factory=list)
    per_contact: dict[GroupKey, int] = field(default_factory=dict)
    capped: list[GroupKey] = field(default_factory=list)  # events of theirs in the window wait for a later round

    @property
    def up_to(self) -> int:
        return self.ids[-1] if self.ids else 0


def pick_fair(rows: list[WindowRow], *, limit: int, share: int, skip: Collection[GroupKey] = ()) -> FairPick:
    """At most `limit` events: every contact's oldest `share` first (contacts in the order of their oldest open
    event), then — if the round has room — `share` more of each that has more, and so on. A contact's events are
    always a prefix of its queue (its order holds); contacts in `skip` (busy) get none. A contact alone in the
    window gets a whole round; beside others, its backlog takes turns with theirs."""
    queues: dict[GroupKey, list[int]] = {}
    for row in rows:
        if row.key not in skip:
            queues.setdefault(row.key, []).append(row.id)
    pick = FairPick()
    taken = dict.fromkeys(queues, 0)
    room = limit
    while room > 0:
        progressed = False
        for key, ids in queues.items():
            start = taken[key]
            n = min(share, len(ids) - start, room)
            if n <= 0:
                continue
            taken[key] = start + n
            room -= n
            progressed = True
            if room == 0:
                break
        if not progressed:
            break
    for key, ids in queues.items():
        if taken[key]:
            pick.per_contact[key] = taken[key]
            pick.ids.extend(ids[: taken[key]])
        if taken[key] < len(ids) and len(ids) > share:
            pick.capped.append(key)
    pick.ids.sort()
    return pick


# The newest open messages of a contact beyond the first `keep`: set aside (`dead`, the reason in `error`).
# `ix_inbound_events_open_by_contact` finds the (keep+1)-th one (a bounded range of `keep` entries) and the ones
# after it; engine events (timers, delivery failures, starts, hand-backs) are never set aside, and neither is a
# message that is a global command (STOP must be heard however much the contact wrote before it).
_BEYOND_KEEP = (
    select(inbound_events.c.id, inbound_events.c.payload)
    .where(
        inbound_events.c.phone_number_id == bindparam("pnid", type_=inbound_events.c.phone_number_id.type),
        inbound_events.c.contact_key == bindparam("key", type_=inbound_events.c.contact_key.type),
        text(_OPEN),
        text("kind = 'message'"),
        inbound_events.c.id
        >= (
            select(inbound_events.c.id)
            .where(
                inbound_events.c.phone_number_id == bindparam("pnid"),
                inbound_events.c.contact_key == bindparam("key"),
                text(_OPEN),
                text("kind = 'message'"),
            )
            .order_by(inbound_events.c.id)
            .limit(1)
            .offset(bindparam("keep", type_=Integer()))
            .scalar_subquery()
        ),
    )
    .order_by(inbound_events.c.id)
)


def _is_command(payload: Any, commands: frozenset[str]) -> bool:
    text_ = payload.get("text") if isinstance(payload, dict) else None
    return isinstance(text_, str) and text_.strip().casefold() in commands


async def shed_backlog(
    conn: AsyncConnection, key: GroupKey, keep: int, reason: str, at: datetime, commands: frozenset[str] = frozenset()
) -> int:
    """Set aside the contact's open messages beyond its oldest `keep`, except global commands (`commands`: the
    words, case-folded); returns how many."""
    rows = (await conn.execute(_BEYOND_KEEP, {"pnid": key[0], "key": key[1], "keep": keep})).all()
    ids = [int(r[0]) for r in rows if not _is_command(r[1], commands)]
    if not ids:
        return 0
    await conn.execute(
        update(inbound_events)
        .where(inbound_events.c.id.in_(ids), text(_OPEN))
        .values(state="dead", error=reason, processed_at=at)
    )
    return len(ids)


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()  # as the engine's `json_serializer` writes JSON columns


@functools.lru_cache(maxsize=16)
def _outbox_insert(keys: tuple[str, ...]) -> tuple[str, tuple[tuple[int, str], ...]]:
    """The SQLite INSERT of outbound rows with these keys, and how to turn each value into what SQLAlchemy's
    types would have bound (JSON text — None included, as JSON `null` like SQLAlchemy's JSON type —, naive UTC
    text for timestamps, 0/1 for booleans)."""
    kinds: list[tuple[int, str]] = []
    for i, key in enumerate(keys):
        col_type = outbound_messages.c[key].type
        if isinstance(col_type, UTCDateTime):
            kinds.append((i, "ts"))
        elif isinstance(col_type, JSON):
            kinds.append((i, "json"))
        elif isinstance(col_type, Boolean):
            kinds.append((i, "bool"))
    sql = f"INSERT INTO {outbound_messages.name} ({', '.join(keys)}) VALUES ({', '.join('?' * len(keys))})"
    return sql, tuple(kinds)


def _sqlite_outbox(rows: list[dict[str, Any]]) -> tuple[str, list[list[Any]]]:
    keys = tuple(rows[0])
    sql, kinds = _outbox_insert(keys)
    params: list[list[Any]] = []
    for row in rows:
        if tuple(row) != keys:
            raise ValueError("outbound rows of one batch must have the same keys")
        values = list(row.values())
        for i, kind in kinds:
            value = values[i]
            if kind == "json":
                values[i] = _json(value)
            elif kind == "ts":
                values[i] = sqlite_ts(value)
            elif value is not None:
                values[i] = 1 if value else 0
        params.append(values)
    return sql, params


def _sqlite_sessions(writes: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    out = []
    for w in writes:
        w = {**w, "b_vars": _json(w["b_vars"]), "b_runtime": _json(w["b_runtime"])}
        for key in ("b_updated_at", "b_expires_at", "b_ended_at"):
            w[key] = sqlite_ts(w[key])
        out.append(tuple(w[key] for key in DEFERRED_KEYS))
    return out


async def write_batch(
    conn: AsyncConnection, book: SessionBook, outgoing: list[dict[str, Any]], done: list[int], at: datetime
) -> None:
    """The batch's deferred session saves, its outbound rows (in queue order) and its `done` marks.

    Raises `AlreadyApplied` (the caller's transaction then rolls back) if any event was not open any more.
    """
    if conn.dialect.name != "sqlite":
        await book.flush(conn)
        await flush_outbox(conn, outgoing)
        await mark_done(conn, done, at)
        return
    session_params = _sqlite_sessions(book.take_writes())
    outbox_sql, outbox_params = _sqlite_outbox(outgoing) if outgoing else ("", [])
    outgoing.clear()
    done_sql = (
        f"UPDATE {inbound_events.name} SET state = 'done', processed_at = ?, error = NULL "
        f"WHERE id IN ({', '.join('?' * len(done))}) AND {OPEN_BY_ID}"
    )
    done_params = (sqlite_ts(at), *done)

    def run(db: sqlite3.Connection) -> int:
        if session_params:
            db.executemany(SQLITE_DEFERRED_UPDATE, session_params)
        if outbox_params:
            db.executemany(outbox_sql, outbox_params)
        return db.execute(done_sql, done_params).rowcount if done else 0

    marked = await sqlite_call(conn, run)
    if marked != len(done):
        raise AlreadyApplied(f"{len(done) - marked} of events {done[:5]}... were already applied")


__all__ = [
    "AlreadyApplied", "Batch", "FairPick", "GroupKey", "WindowRow", "load_batch", "load_batch_ids", "load_window",
    "mark_done", "pick_fair", "shed_backlog", "write_batch",
]  # fmt: skip
