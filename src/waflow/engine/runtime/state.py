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


async def load_active(conn: AsyncConnection, contact_id: int, *, lock: bool = False) -> SessionState | None:
    stmt = select(*_COLUMNS).where(sessions.c.contact_id == contact_id, sessions.c.state != const("ended"))
    if lock and is_postgres(conn):
        stmt = stmt.with_for_update()
    row = (await conn.execute(stmt)).first()
    return SessionState.from_row(row) if row else None


async def load(conn: AsyncConnection, session_id: int, *, lock: bool = False) -> SessionState | None:
    stmt = select(*_COLUMNS).where(sessions.c.id == session_id)
    if lock and is_postgres(conn):
        stmt = stmt.with_for_update()
    row = (await conn.execute(stmt)).first()
    return SessionState.from_row(row) if row else None


class SessionBook:
    """The sessions of one engine transaction: active ones read up front, saves written together at the end.

    Per-statement cost is what bounds the engine on SQLite (each statement is several hand-offs to
    aiosqlite's thread), so a batch reads every contact's active session in the statement that claims
    its events (`preloaded`) and defers each session UPDATE to one executemany (`writes`, see
    `worker.write_batch`). The book keeps the two consistent with reading the rows directly:

    - a preloaded session is handed out once, for the contact's first event: nothing else in this
      transaction touched that row before; later events of the contact read it again, after the
      deferred writes are flushed;
    - an INSERT (a new session) flushes first: the partial unique index must see the ended one ended.
    """

    __slots__ = ("_preloaded", "writes")

    def __init__(self, preloaded: dict[int, SessionState | None] | None = None) -> None:
        self._preloaded = preloaded or {}
        self.writes: list[dict[str, Any]] = []

    async def active(self, conn: AsyncConnection, contact_id: int) -> SessionState | None:
        """The contact's active session (locked on PostgreSQL), as this transaction sees it."""
        if contact_id in self._preloaded:
            return self._preloaded.pop(contact_id)
        await self.flush(conn)
        return await load_active(conn, contact_id, lock=True)

    def forget(self, contact_id: int) -> None:
        """Drop a preloaded session (its contact's events are applied elsewhere)."""
        self._preloaded.pop(contact_id, None)

    async def flush(self, conn: AsyncConnection) -> None:
        """Write the deferred saves now (one executemany)."""
        if self.writes:
            writes, self.writes = self.writes, []
            await conn.execute(_DEFERRED_UPDATE, writes)


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
        book.writes.append(
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
            }
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
