"""A session as the engine works on it (`SessionState`), and reading / writing it in one statement each.

`runtime` is the engine's private part of a session (never shown to expressions):

- `seq`: bumped each time the session starts waiting; timers carry it, so a stale timer is ignored
- `timers`: whether timers of this session may be pending (cancel them when moving on)
- `retries`: re-asks spent at the current question
- `sent`: nodes that sent a message in the last chain (a delivery failure routes from these)
- `stack`: sub-flow call frames `{flow, version, node, vars, save_as}`
- `http`: the request of an http node in flight `{id, node, request, attempts}`
- `wake_at`: when a `wait` node is due (a lost timer is noticed from it)
- `handoff`: `{queue, note, then, at}` while a human has the conversation
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from waflow.store.dialect import const, is_postgres
from waflow.store.tables import sessions

ACTIVE = ("running", "waiting", "handoff")

_FIELDS = (
    "id", "contact_id", "flow_id", "flow_version", "state", "current_node", "vars", "waiting_for", "step_count",
    "started_at", "updated_at", "runtime", "last_error", "expires_at",
)  # fmt: skip
_COLUMNS = [sessions.c[name] for name in _FIELDS]


@dataclass(slots=True)
class SessionState:
    id: int | None  # None until inserted
    contact_id: int
    flow_id: str
    flow_version: str  # the content hash of the version it runs
    state: str = "running"
    current_node: str | None = None
    vars: dict[str, Any] = field(default_factory=dict)
    waiting_for: str | None = None
    step_count: int = 0
    started_at: datetime | None = None
    updated_at: datetime | None = None
    runtime: dict[str, Any] = field(default_factory=dict)
    last_error: str | None = None
    expires_at: datetime | None = None
    end_reason: str | None = None  # set when the engine ends it
    steps: int = 0  # steps taken in this turn (added to step_count on save)

    @property
    def ended(self) -> bool:
        return self.state == "ended"

    @property
    def seq(self) -> int:
        return int(self.runtime.get("seq", 0))

    @classmethod
    def from_row(cls, row: Any) -> SessionState:
        values = dict(row._mapping)
        values["runtime"] = dict(values.get("runtime") or {})
        values["vars"] = dict(values.get("vars") or {})
        return cls(**values)


# built once: building a select() and generating its cache key on every call was a good part of the engine's
# CPU per event (the statement object memoizes its key, so a module-level one costs it once)
_ACTIVE = select(*_COLUMNS).where(
    sessions.c.contact_id == bindparam("contact_id", type_=sessions.c.contact_id.type),
    sessions.c.state != const("ended"),
)
_ACTIVE_LOCKED = _ACTIVE.with_for_update()
_BY_ID = select(*_COLUMNS).where(sessions.c.id == bindparam("session_id", type_=sessions.c.id.type))
_BY_ID_LOCKED = _BY_ID.with_for_update()


async def load_active(conn: AsyncConnection, contact_id: int, *, lock: bool = False) -> SessionState | None:
    stmt = _ACTIVE_LOCKED if lock and is_postgres(conn) else _ACTIVE
    row = (await conn.execute(stmt, {"contact_id": contact_id})).first()
    return SessionState.from_row(row) if row else None


async def load(conn: AsyncConnection, session_id: int, *, lock: bool = False) -> SessionState | None:
    stmt = _BY_ID_LOCKED if lock and is_postgres(conn) else _BY_ID
    row = (await conn.execute(stmt, {"session_id": session_id})).first()
    return SessionState.from_row(row) if row else None


class SessionBook:
    """The sessions of one engine transaction: each contact's active session read once, saves written at the end.

    Per-statement cost is what bounds the engine (SQLite: each statement is several hand-offs to aiosqlite's
    thread; PostgreSQL: each one is ~0.2 ms of SQLAlchemy CPU in the single Python process). So a contact's
    active session is read (and locked, on PostgreSQL) once per transaction — or comes preloaded with the
    statement that claimed the events (`preloaded`, SQLite) — and every save is deferred to one executemany at
    the end (`writes`, see `batch.write_batch`), several saves of one session coalesced into one row.

    The book keeps this equivalent to reading the row again for every event: it holds each contact's session
    *as the transaction has written it* (the row read, then each deferred save applied; `ended` → none) and
    hands out a fresh copy of that per event — so what a turn changed without saving is not seen by the next
    event, exactly as with a re-read. It can: every write of an engine session in the transaction goes
    through `save` / `insert` with this book, and the row is locked (PostgreSQL) or the transaction is the
    only writer (SQLite), so nothing else changes it meanwhile. An INSERT (a new session) flushes first: the
    partial unique index must see the ended one ended.
    """

    __slots__ = ("_fresh", "_rows", "_writes")

    def __init__(self, preloaded: dict[int, SessionState | None] | None = None) -> None:
        self._fresh = preloaded or {}  # contact id → session as read, not handed out yet
        # contact id → its active session as this transaction left it (None: it has none); `vars` / `runtime`
        # may be shared with a pending write, whose dicts are what the flush will write
        self._rows: dict[int, SessionState | None] = {}
        self._writes: dict[int, dict[str, Any]] = {}  # session id → its coalesced deferred UPDATE

    @property
    def writes(self) -> list[dict[str, Any]]:
        """The deferred saves (one parameter set per session)."""
        return list(self._writes.values())

    def take_writes(self) -> list[dict[str, Any]]:
        """The deferred saves, handed over to be written (the book forgets them)."""
        writes = list(self._writes.values())
        self._writes = {}
        return writes

    async def active(self, conn: AsyncConnection, contact_id: int) -> SessionState | None:
        """The contact's active session (locked on PostgreSQL), as this transaction sees it."""
        if contact_id in self._fresh:
            session = self._fresh.pop(contact_id)
            self._rows[contact_id] = _copy(session) if session is not None else None
            return session
        if contact_id in self._rows:
            row = self._rows[contact_id]
            return _copy(row) if row is not None else None
        # no write of this contact's session is pending (it would have put the contact in `_rows`): no flush
        session = await load_active(conn, contact_id, lock=True)
        self._rows[contact_id] = _copy(session) if session is not None else None
        return session

    def forget(self, contact_id: int) -> None:
        """Drop a preloaded session (its contact's events are applied elsewhere)."""
        self._fresh.pop(contact_id, None)

    def inserted(self, s: SessionState) -> None:
        """`s` was just inserted: it is its contact's active session now (as `insert` wrote it)."""
        row = _copy(s, step_count=s.steps)
        if row.state == "ended":
            row.state = "running"
        self._rows[s.contact_id] = row

    def defer(self, s: SessionState, write: dict[str, Any]) -> None:
        """Record `s`'s save `write` (coalesced with an earlier one of the same session)."""
        assert s.id is not None
        earlier = self._writes.get(s.id)
        if earlier is not None:
            # one row per session: the later save carries the final values; steps add up, and the end columns
            # keep an earlier end (the UPDATE's coalesce would have kept it too)
            write["b_steps"] += earlier["b_steps"]
            for key in ("b_ended_at", "b_end_reason"):
                if write[key] is None:
                    write[key] = earlier[key]
        self._writes[s.id] = write
        if s.ended:
            self._rows[s.contact_id] = None
            return
        row = self._rows.get(s.contact_id)
        step_count = (row.step_count if row is not None and row.id == s.id else s.step_count) + s.steps
        started_at = row.started_at if row is not None and row.id == s.id else s.started_at
        # `vars` / `runtime` are the write's own (shallow) copies: a nested change the turn makes after saving
        # is in them, and so in both the flushed row and what the next event reads — as with a re-read
        self._rows[s.contact_id] = SessionState(
            id=s.id, contact_id=s.contact_id, flow_id=s.flow_id, flow_version=s.flow_version, state=s.state,
            current_node=s.current_node, vars=write["b_vars"], waiting_for=write["b_waiting_for"],
            step_count=step_count, started_at=started_at, updated_at=write["b_updated_at"],
            runtime=write["b_runtime"], last_error=s.last_error, expires_at=write["b_expires_at"],
        )  # fmt: skip

    async def flush(self, conn: AsyncConnection) -> None:
        """Write the deferred saves now (one executemany)."""
        if self._writes:
            await conn.execute(_DEFERRED_UPDATE, self.take_writes())


def _json_copy(value: dict[str, Any]) -> dict[str, Any]:
    # what reading the JSON column back gives (the engine's `json_serializer` is orjson): a deep copy
    copied: dict[str, Any] = orjson.loads(orjson.dumps(value))
    return copied


def _copy(s: SessionState, *, step_count: int | None = None) -> SessionState:
    """`s` as reading its row would give it: fresh `vars` / `runtime`, no turn-local fields."""
    return SessionState(
        id=s.id, contact_id=s.contact_id, flow_id=s.flow_id, flow_version=s.flow_version, state=s.state,
        current_node=s.current_node, vars=_json_copy(s.vars), waiting_for=s.waiting_for,
        step_count=s.step_count if step_count is None else step_count, started_at=s.started_at,
        updated_at=s.updated_at, runtime=_json_copy(s.runtime), last_error=s.last_error, expires_at=s.expires_at,
    )  # fmt: skip


# `save`'s UPDATE with every value a parameter, so a batch's saves are one executemany; the end columns are
# kept when not given (a session that has not ended has none, as `save` leaves them)
_DEFERRED_UPDATE = (
    update(sessions)
    .where(sessions.c.id == bindparam("b_id"))
    .values(
        flow_id=bindparam("b_flow_id"),
        flow_version=bindparam("b_flow_version"),
        state=bindparam("b_state"),
        current_node=bindparam("b_current_node"),
        vars=bindparam("b_vars", type_=sessions.c.vars.type),
        waiting_for=bindparam("b_waiting_for"),
        step_count=sessions.c.step_count + bindparam("b_steps"),
        updated_at=bindparam("b_updated_at", type_=sessions.c.updated_at.type),
        runtime=bindparam("b_runtime", type_=sessions.c.runtime.type),
        last_error=bindparam("b_last_error"),
        expires_at=bindparam("b_expires_at", type_=sessions.c.expires_at.type),
        ended_at=func.coalesce(bindparam("b_ended_at", type_=sessions.c.ended_at.type), sessions.c.ended_at),
        end_reason=func.coalesce(bindparam("b_end_reason", type_=sessions.c.end_reason.type), sessions.c.end_reason),
    )
)
# the parameter order of the same UPDATE written by hand for SQLite (`worker.write_batch`)
DEFERRED_KEYS = (
    "b_flow_id", "b_flow_version", "b_state", "b_current_node", "b_vars", "b_waiting_for", "b_steps", "b_updated_at",
    "b_runtime", "b_last_error", "b_expires_at", "b_ended_at", "b_end_reason", "b_id",
)  # fmt: skip
SQLITE_DEFERRED_UPDATE = (
    "UPDATE sessions SET flow_id = ?, flow_version = ?, state = ?, current_node = ?, vars = ?, waiting_for = ?, "
    "step_count = step_count + ?, updated_at = ?, runtime = ?, last_error = ?, expires_at = ?, "
    "ended_at = coalesce(?, ended_at), end_reason = coalesce(?, end_reason) WHERE id = ?"
)


async def insert(conn: AsyncConnection, s: SessionState, now: datetime, book: SessionBook | None = None) -> int:
    """Insert a new session (the partial unique index refuses a second active one per contact)."""
    if book is not None:
        await book.flush(conn)
    stmt = (
        sessions.insert()
        .values(
            contact_id=s.contact_id,
            flow_id=s.flow_id,
            flow_version=s.flow_version,
            state=s.state if s.state != "ended" else "running",
            current_node=s.current_node,
            vars=s.vars,
            waiting_for=s.waiting_for,
            step_count=s.steps,
            started_at=now,
            updated_at=now,
            runtime=s.runtime,
            last_error=s.last_error,
            expires_at=s.expires_at,
        )
        .returning(sessions.c.id)
    )
    s.id = int((await conn.execute(stmt)).scalar_one())
    s.started_at = s.updated_at = now
    if book is not None:
        book.inserted(s)
    return s.id


async def save(conn: AsyncConnection, s: SessionState, now: datetime, book: SessionBook | None = None) -> None:
    """Write the session back (insert it when new); an ended session records its reason.

    With a `book`, an existing session's UPDATE is deferred to the book's batched write.
    """
    if s.id is None:
        ended = s.ended
        await insert(conn, s, now, book)
        if not ended:
            s.steps = 0
            return
    assert s.id is not None
    if book is not None:
        book.defer(
            s,
            {
                "b_id": s.id,
                "b_flow_id": s.flow_id,
                "b_flow_version": s.flow_version,
                "b_state": s.state,
                "b_current_node": s.current_node,
                # shallow copies: this turn may go on changing the session after saving it (a later save of
                # the same row, written after this one, then carries the final values)
                "b_vars": dict(s.vars),
                "b_waiting_for": None if s.ended else s.waiting_for,
                "b_steps": s.steps,
                "b_updated_at": now,
                "b_runtime": dict(s.runtime),
                "b_last_error": s.last_error,
                "b_expires_at": None if s.ended else s.expires_at,
                "b_ended_at": now if s.ended else None,
                "b_end_reason": (s.end_reason or "completed") if s.ended else None,
            },
        )
        s.steps = 0
        s.updated_at = now
        return
    values: dict[str, Any] = {
        "flow_id": s.flow_id,
        "flow_version": s.flow_version,
        "state": s.state,
        "current_node": s.current_node,
        "vars": s.vars,
        "waiting_for": s.waiting_for,
        "step_count": sessions.c.step_count + s.steps,
        "updated_at": now,
        "runtime": s.runtime,
        "last_error": s.last_error,
        "expires_at": s.expires_at if not s.ended else None,
    }
    if s.ended:
        values.update(ended_at=now, end_reason=s.end_reason or "completed", waiting_for=None)
    await conn.execute(update(sessions).where(sessions.c.id == s.id).values(**values))
    s.steps = 0
    s.updated_at = now
