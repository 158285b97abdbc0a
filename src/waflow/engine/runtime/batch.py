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
"""

from __future__ import annotations

import functools
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import JSON, Boolean, Select, and_, bindparam, select, text, update
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


@functools.lru_cache(maxsize=8)
def _batch_query(limit: int) -> Select[Any]:
    ev = (
        select(*(inbound_events.c[name] for name in _EVENT_FIELDS))
        .where(text(ENGINE_OPEN_EVENTS))
        .order_by(inbound_events.c.id)
        .limit(limit)
        .subquery("e")
    )
    joined = ev.outerjoin(
        contacts, and_(contacts.c.phone_number_id == ev.c.phone_number_id, contacts.c.contact_key == ev.c.contact_key)
    ).outerjoin(sessions, and_(sessions.c.contact_id == contacts.c.id, sessions.c.state != const("ended")))
    columns = [
        *(ev.c[name] for name in _EVENT_FIELDS),
        *(contacts.c[name].label(f"c_{name}") for name in _CONTACT_FIELDS),
        *(sessions.c[name].label(f"s_{name}") for name in _SESSION_FIELDS),
    ]
    return select(*columns).select_from(joined).order_by(ev.c.id)


async def load_batch(conn: AsyncConnection, limit: int) -> Batch:
    """The oldest `limit` open engine events, their contacts (filed under the event's key) and those contacts'
    active sessions, in one statement. A contact found under another of its ids, or not yet created, is not
    in `contacts`: the worker looks it up the slow way (`lock_contact`)."""
    batch = Batch([], {}, {})
    for row in await conn.execute(_batch_query(limit)):
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


__all__ = ["AlreadyApplied", "Batch", "GroupKey", "load_batch", "mark_done", "write_batch"]
