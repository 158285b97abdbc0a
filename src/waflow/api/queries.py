"""Read models for the admin API: lists and timelines over the store's tables (read-only, paged).

Every list is a bounded range of an index, newest (or oldest) first, whatever the size of the tables:
a page never sorts or filters more rows than it shows, give or take the rows its filters skip inside
one contact's history.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Select, select, text, union_all
from sqlalchemy.ext.asyncio import AsyncConnection

from waflow.api import schemas
from waflow.store import (
    SERVICE_WINDOW,
    ContactRecord,
    ContactRepository,
    OutboundHistory,
    OutboundRecord,
    SessionRecord,
    SessionRepository,
    utcnow,
)
from waflow.store.dialect import const
from waflow.store.outbox import OUTBOUND_COLUMNS
from waflow.store.sessions import HistoryKey, HistoryRow
from waflow.store.tables import CONTACTS_LISTED, contacts, outbound_messages
from waflow.store.types import as_utc

_CONTACT_COLUMNS = [contacts.c[name] for name in ContactRecord.__slots__]
_sessions = SessionRepository()
_contacts = ContactRepository()


def contact_out(c: ContactRecord, now: datetime | None = None) -> schemas.ContactOut:
    now = now or utcnow()
    closes = c.last_inbound_at + SERVICE_WINDOW if c.last_inbound_at else None
    return schemas.ContactOut(
        id=c.id, phone_number_id=c.phone_number_id, contact_key=c.contact_key, wa_id=c.wa_id, user_id=c.user_id,
        profile_name=c.profile_name, last_inbound_at=c.last_inbound_at, window_open=c.window_open(now),
        window_closes_at=closes, opted_out=c.opted_out, opted_out_at=c.opted_out_at if c.opted_out else None,
        created_at=c.created_at,
    )


def message_out(m: OutboundRecord) -> schemas.MessageOut:
    error = None
    if m.error_code is not None or m.error_text:
        error = schemas.ErrorInfo(code=m.error_code, error_class=m.error_class, text=m.error_text)
    return schemas.MessageOut(
        id=m.id, phone_number_id=m.phone_number_id, contact_key=m.contact_key, to=m.to_number, type=m.type,
        content=m.content, status=m.status.value, wamid=m.provider_message_id, business_initiated=m.business_initiated,
        session_id=m.session_id, campaign_id=m.campaign_id, attempts=m.attempts, error=error, created_at=m.created_at,
        accepted_at=m.accepted_at, sent_at=m.sent_at, delivered_at=m.delivered_at, read_at=m.read_at,
        failed_at=m.failed_at,
    )


def message_detail(h: OutboundHistory) -> schemas.MessageDetail:
    base = message_out(h.message).model_dump()
    return schemas.MessageDetail(
        **base,
        send_attempts=[schemas.AttemptOut.model_validate(a) for a in h.attempts],
        status_history=[schemas.StatusEventOut.model_validate(s) for s in h.statuses],
    )


def session_out(s: SessionRecord, c: ContactRecord) -> schemas.SessionOut:
    return schemas.SessionOut(
        id=s.id, contact=contact_out(c), flow_id=s.flow_id, flow_version=s.flow_version, state=s.state,
        current_node=s.current_node, waiting_for=s.waiting_for, vars=s.vars, started_at=s.started_at,
        updated_at=s.updated_at, ended_at=s.ended_at, end_reason=s.end_reason,
    )


async def list_messages(
    conn: AsyncConnection, *, phone_number_id: str | None, contact_key: str | None, status: str | None,
    before: int | None, limit: int, numbers: list[str] | None = None,
) -> tuple[list[OutboundRecord], int | None]:
    """Outbound messages, newest first. One contact's are a range of `(phone_number_id, contact_key, id)`; with
    no number given, one such range per configured number (`numbers`), merged newest first."""
    o = outbound_messages

    def page(pnid: str | None) -> Select[Any]:
        stmt = select(*OUTBOUND_COLUMNS).limit(limit + 1)
        if pnid:
            stmt = stmt.where(o.c.phone_number_id == pnid)
        if contact_key:
            stmt = stmt.where(o.c.contact_key == contact_key)
        stmt = stmt.order_by(o.c.id.desc())
        if status:
            stmt = stmt.where(o.c.status == status)
        if before:
            stmt = stmt.where(o.c.id < before)
        return stmt

    if contact_key and not phone_number_id and numbers and len(numbers) > 1:
        merged = union_all(*(select(*page(n).subquery().c) for n in numbers)).subquery()
        stmt: Select[Any] = select(*merged.c).order_by(merged.c.id.desc()).limit(limit + 1)
    else:
        single = numbers[0] if contact_key and not phone_number_id and numbers else phone_number_id
        stmt = page(single)
    rows = [OutboundRecord.from_row(r) for r in await conn.execute(stmt)]
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (rows[-1].id if more and rows else None)


async def list_contacts(
    conn: AsyncConnection, *, phone_number_id: str | None, after: int | None, limit: int
) -> tuple[list[ContactRecord], int | None]:
    # the aliases of merged contacts are not contacts of their own; the filter is written as the partial
    # index's WHERE (`ix_contacts_listed_phone_number_id_id`), so a number's page is a range of it in id order
    stmt = select(*_CONTACT_COLUMNS).where(text(CONTACTS_LISTED)).limit(limit + 1)
    if phone_number_id:
        # written into the statement (digits, checked by the route): a PostgreSQL generic plan does not know
        # the value, guesses that most contacts match and walks the primary key filtering instead of the index
        stmt = stmt.where(contacts.c.phone_number_id == const(phone_number_id))
    stmt = stmt.order_by(contacts.c.id)
    if after:
        stmt = stmt.where(contacts.c.id > after)
    rows = [ContactRecord(**r._mapping) for r in await conn.execute(stmt)]
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (rows[-1].id if more and rows else None)


async def list_sessions(
    conn: AsyncConnection, *, state: str | None, flow_id: str | None, before: int | None, limit: int
) -> tuple[list[tuple[SessionRecord, ContactRecord]], int | None]:
    out = await _sessions.page(conn, state=state, flow_id=flow_id, before=before, limit=limit + 1)
    more = len(out) > limit
    out = out[:limit]
    return out, (out[-1][0].id if more and out else None)


async def session_with_contact(conn: AsyncConnection, session_id: int) -> tuple[SessionRecord, ContactRecord] | None:
    s = await _sessions.get(conn, session_id)
    if s is None:
        return None
    c = await _contacts.get_by_id(conn, s.contact_id)
    if c is None:
        return None
    return s, c


def _outbound_text(type_: str, content: dict[str, Any]) -> str | None:
    if type_ == "text":
        return str(content.get("body", ""))
    if type_ == "interactive":
        body = content.get("body")
        text = body.get("text") if isinstance(body, dict) else None
        action = content.get("action")
        choices: list[str] = []
        if isinstance(action, dict):
            for b in action.get("buttons") or []:
                title = (b.get("reply") or {}).get("title") if isinstance(b, dict) else None
                if title:
                    choices.append(f"[{title}]")
            for section in action.get("sections") or []:
                for r in (section.get("rows") or []) if isinstance(section, dict) else []:
                    if isinstance(r, dict) and r.get("title"):
                        choices.append(f"({r['title']})")
        return " ".join([str(text or ""), *choices]).strip()
    if type_ == "template":
        return f"template {content.get('name')}"
    if type_ in ("image", "video", "document", "audio", "sticker"):
        return str(content.get("caption") or content.get("link") or content.get("id") or type_)
    if type_ == "location":
        return str(content.get("name") or f"{content.get('latitude')}, {content.get('longitude')}")
    return None


def _item(row: HistoryRow) -> schemas.TimelineItem:
    body: dict[str, Any] = row.body if isinstance(row.body, dict) else {}
    if row.direction == "in":
        return schemas.TimelineItem(
            direction="in", at=as_utc(row.at), type=str(body.get("type", "message")), text=body.get("text"),
            id=str(row.provider_message_id or row.id), payload=body.get("payload"),
        )
    type_ = row.type or ""
    return schemas.TimelineItem(
        direction="out", at=as_utc(row.at), type=type_, text=_outbound_text(type_, body), id=str(row.id),
        status=row.status,
    )


async def timelines(
    conn: AsyncConnection, keys: list[HistoryKey], *, limit: int = 100
) -> list[list[schemas.TimelineItem]]:
    """Each key's contact's messages both ways, oldest first (the newest `limit`), in two statements in all."""
    per_key: list[list[schemas.TimelineItem]] = [[] for _ in keys]
    for row in await _sessions.timelines(conn, keys, limit):
        per_key[row.key].append(_item(row))
    for items in per_key:
        items.sort(key=lambda item: item.at)
        del items[:-limit]
    return per_key


async def timeline(
    conn: AsyncConnection, phone_number_id: str, contact_key: str, *, since: datetime | None = None, limit: int = 100
) -> list[schemas.TimelineItem]:
    """The contact's messages both ways, oldest first (the newest `limit`)."""
    [items] = await timelines(conn, [HistoryKey(phone_number_id, contact_key, since)], limit=limit)
    return items


async def handoff_queue(
    conn: AsyncConnection, *, limit: int, messages: int
) -> list[tuple[SessionRecord, ContactRecord, list[schemas.TimelineItem]]]:
    """Sessions waiting for a person, newest first, each with its recent messages: three bounded statements
    (sessions, their user messages, their outbound messages) however long the queue."""
    rows, _ = await list_sessions(conn, state="handoff", flow_id=None, before=None, limit=limit)
    keys = [HistoryKey(c.phone_number_id, c.contact_key, s.started_at) for s, c in rows]
    found = await timelines(conn, keys, limit=messages)
    return [(s, c, items) for (s, c), items in zip(rows, found, strict=True)]
