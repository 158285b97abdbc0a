"""Sessions: one conversation state machine per contact (the flow engine's state).

At most one session per contact is not `ended` (partial unique index
`uq_sessions_active_contact_id`): `create` raises `SessionConflict` when one is active.

The read side of conversations (`page`, `timelines`) is what the admin API and the agents' handoff
queue show; each statement is a bounded range of an index whatever the size of the tables: lists walk
`ix_sessions_state_id` / `ix_sessions_flow_id_state_id` newest first, a contact's messages walk the
per-contact history indexes `(phone_number_id, contact_key, id)` of the inbox and the outbox.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, String, bindparam, literal, select, union_all, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from waflow.store.contacts import ContactRecord
from waflow.store.dialect import const, locking
from waflow.store.tables import SESSION_STATES, contacts, inbound_events, outbound_messages, sessions
from waflow.store.types import UTCDateTime, utcnow

ACTIVE_STATES = ("running", "waiting", "handoff")


class SessionConflict(Exception):
    """The contact already has a session that has not ended."""


@dataclass(frozen=True, slots=True)
class SessionRecord:
    id: int
    contact_id: int
    flow_id: str
    flow_version: str
    state: str
    current_node: str | None
    vars: dict[str, Any]
    waiting_for: str | None
    step_count: int
    started_at: datetime
    updated_at: datetime
    ended_at: datetime | None
    end_reason: str | None


_COLUMNS = [sessions.c[name] for name in SessionRecord.__slots__]


def _record(row: Any) -> SessionRecord:
    return SessionRecord(**row._mapping)


_CONTACT_COLUMNS = [contacts.c[name] for name in ContactRecord.__slots__]
_N_SESSION = len(_COLUMNS)


@dataclass(frozen=True, slots=True)
class HistoryKey:
    """Whose messages a timeline shows: one contact of one number, optionally only those at or after `since`."""

    phone_number_id: str
    contact_key: str
    since: datetime | None = None


@dataclass(frozen=True, slots=True)
class HistoryRow:
    """One message of a timeline: an inbound user message (`in`, its canonical payload) or an outbound row
    (`out`, its content and delivery status). `key` is the index of its `HistoryKey` in the request."""

    key: int
    direction: str
    id: int
    at: datetime
    type: str | None
    body: Any
    status: str | None
    provider_message_id: str | None


def _newest(stmt: Select[Any], order: Any, limit: int) -> Select[Any]:
    # a subquery per branch: SQLite accepts no ORDER BY / LIMIT on the members of a compound SELECT
    sub = stmt.order_by(order.desc()).limit(limit).subquery()
    return select(*sub.c)


class SessionRepository:
    async def create(
        self,
        conn: AsyncConnection,
        contact_id: int,
        flow_id: str,
        flow_version: str,
        *,
        current_node: str | None = None,
        vars: dict[str, Any] | None = None,
        state: str = "running",
    ) -> SessionRecord:
        """Start a session; raises `SessionConflict` (transaction still usable) if one is active."""
        now = utcnow()
        stmt = (
            sessions.insert()
            .values(
                contact_id=contact_id,
                flow_id=flow_id,
                flow_version=flow_version,
                state=state,
                current_node=current_node,
                vars=vars or {},
                step_count=0,
                started_at=now,
                updated_at=now,
            )
            .returning(*_COLUMNS)
        )
        savepoint = await conn.begin_nested()
        try:
            row = (await conn.execute(stmt)).one()
        except IntegrityError as exc:
            await savepoint.rollback()
            raise SessionConflict(f"contact {contact_id} already has an active session") from exc
        await savepoint.commit()
        return _record(row)

    async def get(self, conn: AsyncConnection, session_id: int) -> SessionRecord | None:
        row = (await conn.execute(select(*_COLUMNS).where(sessions.c.id == session_id))).first()
        return _record(row) if row else None

    async def active_for_contact(
        self, conn: AsyncConnection, contact_id: int, *, lock: bool = False
    ) -> SessionRecord | None:
        """The contact's session that has not ended, if any (`lock`: FOR UPDATE on PostgreSQL)."""
        stmt = select(*_COLUMNS).where(sessions.c.contact_id == contact_id, sessions.c.state != const("ended"))
        if lock:
            stmt = locking(conn, stmt)
        row = (await conn.execute(stmt)).first()
        return _record(row) if row else None

    async def update(
        self,
        conn: AsyncConnection,
        session_id: int,
        *,
        state: str | None = None,
        current_node: str | None = None,
        vars: dict[str, Any] | None = None,
        waiting_for: str | None = None,
        clear_waiting: bool = False,
        steps: int = 0,
    ) -> SessionRecord | None:
        """Change the given fields of an active session (an ended one is left alone: None)."""
        values: dict[str, Any] = {"updated_at": utcnow()}
        if state is not None:
            if state == "ended":
                raise ValueError("use end() to end a session")
            values["state"] = state
        if current_node is not None:
            values["current_node"] = current_node
        if vars is not None:
            values["vars"] = vars
        if waiting_for is not None or clear_waiting:
            values["waiting_for"] = waiting_for
        if steps:
            values["step_count"] = sessions.c.step_count + steps
        stmt = (
            update(sessions)
            .where(sessions.c.id == session_id, sessions.c.state != const("ended"))
            .values(**values)
            .returning(*_COLUMNS)
        )
        row = (await conn.execute(stmt)).first()
        return _record(row) if row else None

    async def end(
        self, conn: AsyncConnection, session_id: int, reason: str, at: datetime | None = None
    ) -> SessionRecord | None:
        """End a session (None if it had already ended)."""
        at = at or utcnow()
        stmt = (
            update(sessions)
            .where(sessions.c.id == session_id, sessions.c.state != const("ended"))
            .values(state="ended", ended_at=at, end_reason=reason, updated_at=at, waiting_for=None)
            .returning(*_COLUMNS)
        )
        row = (await conn.execute(stmt)).first()
        return _record(row) if row else None

    async def page(
        self,
        conn: AsyncConnection,
        *,
        state: str | None = None,
        flow_id: str | None = None,
        before: int | None = None,
        limit: int = 50,
    ) -> list[tuple[SessionRecord, ContactRecord]]:
        """Sessions, newest first, with their contacts: of one state and/or one flow, with ids below `before`.

        A flow's sessions of any state are read as one short range per state of `ix_sessions_flow_id_state_id`
        (each at most `limit` long) merged newest first, instead of sorting every session the flow ever had.
        """
        s = sessions
        # The state is written into the statement (`const`, one of four values): a PostgreSQL generic plan,
        # which does not know it, estimates `state = $1` as a third of the table and walks the primary key
        # newest first, filtering, as far back as the rarest state takes. The flow id stays a parameter: it is
        # any text (a literal would have to carry NULs and quotes), and PostgreSQL's custom plans see it.
        if flow_id is not None and state is None:
            branches = [
                _newest(select(s.c.id).where(s.c.flow_id == flow_id, s.c.state == const(st),
                                             *_below(before)), s.c.id, limit)
                for st in SESSION_STATES
            ]  # fmt: skip
            ids = union_all(*branches).subquery()
            newest = select(ids.c.id).order_by(ids.c.id.desc()).limit(limit).subquery()
            stmt = (
                select(*_COLUMNS, *_CONTACT_COLUMNS)
                .select_from(newest.join(s, s.c.id == newest.c.id).join(contacts, contacts.c.id == s.c.contact_id))
                .order_by(newest.c.id.desc())
            )
        else:
            where = list(_below(before))
            if flow_id is not None:
                where.append(s.c.flow_id == flow_id)
            if state is not None:
                where.append(s.c.state == const(state))
            stmt = (
                select(*_COLUMNS, *_CONTACT_COLUMNS)
                .join(contacts, contacts.c.id == s.c.contact_id)
                .where(*where)
                .order_by(s.c.id.desc())
                .limit(limit)
            )
        out: list[tuple[SessionRecord, ContactRecord]] = []
        for row in await conn.execute(stmt):
            out.append((SessionRecord(*row[:_N_SESSION]), ContactRecord(*row[_N_SESSION:])))
        return out

    async def timelines(
        self, conn: AsyncConnection, keys: Sequence[HistoryKey], limit: int
    ) -> list[HistoryRow]:
        """The newest `limit` user messages and the newest `limit` outbound messages of each key's contact, in
        two statements whatever the number of keys (a UNION ALL of one bounded index range per contact)."""
        if not keys:
            return []
        in_stmt, out_stmt = _timeline_statements(tuple(key.since is not None for key in keys), limit)
        params: dict[str, Any] = {}
        for n, key in enumerate(keys):
            params[f"p{n}"], params[f"c{n}"] = key.phone_number_id, key.contact_key
            if key.since is not None:
                params[f"s{n}"] = key.since
        rows: list[HistoryRow] = []
        for r in await conn.execute(in_stmt, params):
            payload = r.payload if isinstance(r.payload, dict) else {}
            rows.append(HistoryRow(int(r.k), "in", r.id, r.at, payload.get("type"), payload, None,
                                   r.provider_message_id))  # fmt: skip
        for r in await conn.execute(out_stmt, params):
            rows.append(HistoryRow(int(r.k), "out", r.id, r.at, r.type, r.content, r.status, None))
        return rows


@functools.lru_cache(maxsize=64)
def _timeline_statements(since: tuple[bool, ...], limit: int) -> tuple[Any, Any]:
    """The two statements of `timelines` for keys with / without `since`, built once: building a 50-branch
    UNION costs more than running it (parameters `p<n>`, `c<n>`, `s<n>`: each key's number, contact, since)."""
    i, o = inbound_events, outbound_messages
    in_branches = []
    out_branches = []
    for n, with_since in enumerate(since):
        pnid, key = bindparam(f"p{n}", type_=String()), bindparam(f"c{n}", type_=String())
        in_where: list[Any] = [i.c.phone_number_id == pnid, i.c.contact_key == key, i.c.kind == const("message")]
        out_where: list[Any] = [o.c.phone_number_id == pnid, o.c.contact_key == key]
        if with_since:
            at = bindparam(f"s{n}", type_=UTCDateTime())
            in_where.append(i.c.received_at >= at)
            out_where.append(o.c.created_at >= at)
        in_branches.append(_newest(
            select(literal(n).label("k"), i.c.id, i.c.received_at.label("at"), i.c.payload, i.c.provider_message_id)
            .where(*in_where),
            i.c.id, limit,
        ))  # fmt: skip
        out_branches.append(_newest(
            select(literal(n).label("k"), o.c.id, o.c.created_at.label("at"), o.c.type, o.c.content, o.c.status)
            .where(*out_where),
            o.c.id, limit,
        ))  # fmt: skip
    if len(since) == 1:
        return in_branches[0], out_branches[0]
    return union_all(*in_branches), union_all(*out_branches)


def _below(before: int | None) -> list[Any]:
    return [sessions.c.id < before] if before else []
