"""Read models for the admin API: lists and timelines over the store's tables (read-only, paged)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from waflow.api import schemas
from waflow.store import SERVICE_WINDOW, ContactRecord, OutboundHistory, OutboundRecord, SessionRecord, utcnow
from waflow.store.outbox import OUTBOUND_COLUMNS
from waflow.store.tables import contacts, inbound_events, outbound_messages, sessions
from waflow.store.types import as_utc

_CONTACT_COLUMNS = [contacts.c[name] for name in ContactRecord.__slots__]
_SESSION_COLUMNS = [sessions.c[name] for name in SessionRecord.__slots__]


def contact_out(c: ContactRecord, now: datetime | None = None) -> schemas.ContactOut:
    now = now or utcnow()
    closes = c.last_inbound_at + SERVICE_WINDOW if c.last_inbound_at else None
    return schemas.ContactOut(
        id=c.id, phone_number_id=c.phone_number_id, contact_key=c.contact_key, wa_id=c.wa_id, user_id=c.user_id,
        profile_name=c.profile_name, last_inbound_at=c.last_inbound_at, window_open=c.window_open(now),
        window_closes_at=closes, opted_out=c.opted_out, created_at=c.created_at,
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
    before: int | None, limit: int,
) -> tuple[list[OutboundRecord], int | None]:
    o = outbound_messages
    stmt = select(*OUTBOUND_COLUMNS).order_by(o.c.id.desc()).limit(limit + 1)
    if phone_number_id:
        stmt = stmt.where(o.c.phone_number_id == phone_number_id)
    if contact_key:
        stmt = stmt.where(o.c.contact_key == contact_key)
    if status:
        stmt = stmt.where(o.c.status == status)
    if before:
        stmt = stmt.where(o.c.id < before)
    rows = [OutboundRecord.from_row(r) for r in await conn.execute(stmt)]
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (rows[-1].id if more and rows else None)


async def list_contacts(
    conn: AsyncConnection, *, phone_number_id: str | None, after: int | None, limit: int
) -> tuple[list[ContactRecord], int | None]:
    stmt = select(*_CONTACT_COLUMNS).order_by(contacts.c.id).limit(limit + 1)
    if phone_number_id:
        stmt = stmt.where(contacts.c.phone_number_id == phone_number_id)
    if after:
        stmt = stmt.where(contacts.c.id > after)
    rows = [ContactRecord(**r._mapping) for r in await conn.execute(stmt)]
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (rows[-1].id if more and rows else None)


async def list_sessions(
    conn: AsyncConnection, *, state: str | None, flow_id: str | None, before: int | None, limit: int
) -> tuple[list[tuple[SessionRecord, ContactRecord]], int | None]:
    stmt = (
        select(*_SESSION_COLUMNS, *[c.label(f"c_{c.name}") for c in _CONTACT_COLUMNS])
        .join(contacts, contacts.c.id == sessions.c.contact_id)
        .order_by(sessions.c.id.desc())
        .limit(limit + 1)
    )
    if state:
        stmt = stmt.where(sessions.c.state == state)
    if flow_id:
        stmt = stmt.where(sessions.c.flow_id == flow_id)
    if before:
        stmt = stmt.where(sessions.c.id < before)
    out: list[tuple[SessionRecord, ContactRecord]] = []
    for row in await conn.execute(stmt):
        m = row._mapping
        s = SessionRecord(**{name: m[name] for name in SessionRecord.__slots__})
        c = ContactRecord(**{name: m[f"c_{name}"] for name in ContactRecord.__slots__})
        out.append((s, c))
    more = len(out) > limit
    out = out[:limit]
    return out, (out[-1][0].id if more and out else None)


async def session_with_contact(conn: AsyncConnection, session_id: int) -> tuple[SessionRecord, ContactRecord] | None:
    row = (await conn.execute(select(*_SESSION_COLUMNS).where(sessions.c.id == session_id))).first()
    if row is None:
        return None
    s = SessionRecord(**row._mapping)
    crow = (await conn.execute(select(*_CONTACT_COLUMNS).where(contacts.c.id == s.contact_id))).first()
    if crow is None:
        return None
    return s, ContactRecord(**crow._mapping)


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


async def timeline(
    conn: AsyncConnection, phone_number_id: str, contact_key: str, *, since: datetime | None = None, limit: int = 100
) -> list[schemas.TimelineItem]:
    """The contact's messages both ways, oldest first (the newest `limit`)."""
    i, o = inbound_events, outbound_messages
    in_stmt = (
        select(i.c.id, i.c.payload, i.c.received_at, i.c.provider_message_id)
        .where(i.c.phone_number_id == phone_number_id, i.c.contact_key == contact_key, i.c.kind == "message")
        .order_by(i.c.id.desc())
        .limit(limit)
    )
    out_stmt = (
        select(o.c.id, o.c.type, o.c.content, o.c.status, o.c.created_at)
        .where(o.c.phone_number_id == phone_number_id, o.c.contact_key == contact_key)
        .order_by(o.c.id.desc())
        .limit(limit)
    )
    if since is not None:
        in_stmt = in_stmt.where(i.c.received_at >= since)
        out_stmt = out_stmt.where(o.c.created_at >= since)
    items: list[schemas.TimelineItem] = []
    for row in await conn.execute(in_stmt):
        payload: dict[str, Any] = row.payload if isinstance(row.payload, dict) else {}
        items.append(schemas.TimelineItem(
            direction="in", at=as_utc(row.received_at), type=str(payload.get("type", "message")),
            text=payload.get("text"), id=str(row.provider_message_id or row.id), payload=payload.get("payload"),
        ))
    for orow in await conn.execute(out_stmt):
        content: dict[str, Any] = orow.content if isinstance(orow.content, dict) else {}
        items.append(schemas.TimelineItem(
            direction="out", at=as_utc(orow.created_at), type=orow.type, text=_outbound_text(orow.type, content),
            id=str(orow.id), status=orow.status,
        ))
    items.sort(key=lambda item: item.at)
    return items[-limit:]
