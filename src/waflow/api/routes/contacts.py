"""Contacts, their 24 h window, their message timeline, and their consent (opt-out / opt-in, with history)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request

from waflow.api import queries, schemas
from waflow.api.auth import context, require_key
from waflow.api.context import ApiContext
from waflow.api.errors import ApiError
from waflow.api.numbers import number_id
from waflow.canonical import ContactRef

router = APIRouter(prefix="/api/v1/contacts", tags=["contacts"], dependencies=[Depends(require_key)])


@router.get("", response_model=schemas.ContactList, summary="Contacts with their window state")
async def list_contacts(
    request: Request,
    phone_number_id: Annotated[str | None, Query(pattern=r"^\d{1,32}$")] = None,
    after: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> schemas.ContactList:
    ctx = context(request)
    async with ctx.store.read() as conn:
        rows, nxt = await queries.list_contacts(conn, phone_number_id=phone_number_id, after=after, limit=limit)
    return schemas.ContactList(items=[queries.contact_out(c) for c in rows], next_after=nxt)


@router.get("/{contact}", response_model=schemas.ContactDetail, summary="A contact, its session and timeline")
async def get_contact(
    request: Request,
    contact: Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9+._\-]+$",
                                 description="wa_id or business-scoped user id")],
    phone_number_id: Annotated[str | None, Query(pattern=r"^\d{1,32}$")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> schemas.ContactDetail:
    ctx = context(request)
    pnid = number_id(ctx, phone_number_id)
    async with ctx.store.read() as conn:
        record = await ctx.store.contacts.get(conn, pnid, contact)
        if record is None:
            raise ApiError(404, "not_found", f"no contact {contact} on number {pnid}")
        session = await ctx.store.sessions.active_for_contact(conn, record.id)
        timeline = await queries.timeline(conn, pnid, record.contact_key, limit=limit)
    return schemas.ContactDetail(
        **queries.contact_out(record).model_dump(),
        session=queries.session_out(session, record) if session else None,
        timeline=timeline,
    )


ContactPath = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9+._\-]+$",
                                  description="wa_id or business-scoped user id")]


async def _consent_out(ctx: ApiContext, pnid: str, contact: str, change: bool | None = None,
                       *, opted_out: bool = False, body: schemas.ConsentChange | None = None,
                       key: str | None = None) -> schemas.ConsentOut:
    async with ctx.store.begin() if change else ctx.store.read() as conn:
        record = await ctx.store.contacts.get(conn, pnid, contact)
        if record is None and change and not opted_out:
            raise ApiError(404, "not_found", f"no contact {contact} on number {pnid}: nothing to opt in")
        changed: bool | None = None
        if change:
            if record is None:  # an opt-out asked for someone who never wrote: recorded, so nothing reaches them
                ref = ContactRef.from_address(contact)
                record = await ctx.store.contacts.upsert_from_inbound(conn, pnid, ref, None)
            actor = " ".join(x for x in (key, f"({body.by})" if body and body.by else None) if x) or None
            result = await ctx.store.consent.set(
                conn, record, opted_out=opted_out, source="api", actor=actor, detail=body.note if body else None
            )
            record, changed = result.contact, result.changed
        if record is None:
            raise ApiError(404, "not_found", f"no contact {contact} on number {pnid}")
        history = await ctx.store.consent.history(conn, record.id)
    return schemas.ConsentOut(
        contact_key=record.contact_key, opted_out=record.opted_out,
        opted_out_at=record.opted_out_at if record.opted_out else None, changed=changed,
        history=[schemas.ConsentEventOut.model_validate(e) for e in history],
    )


@router.get("/{contact}/consent", response_model=schemas.ConsentOut,
            summary="A contact's opt-out state and its history (who, when, how)")
async def get_consent(
    request: Request, contact: ContactPath, phone_number_id: Annotated[str | None, Query(pattern=r"^\d{1,32}$")] = None
) -> schemas.ConsentOut:
    ctx = context(request)
    return await _consent_out(ctx, number_id(ctx, phone_number_id), contact)


@router.post("/{contact}/opt-out", response_model=schemas.ConsentOut,
             summary="Record that the contact asked not to be messaged (nothing business-initiated reaches them)")
async def opt_out(
    request: Request, contact: ContactPath, body: schemas.ConsentChange | None = None,
    phone_number_id: Annotated[str | None, Query(pattern=r"^\d{1,32}$")] = None,
) -> schemas.ConsentOut:
    ctx = context(request)
    return await _consent_out(ctx, number_id(ctx, phone_number_id), contact, True, opted_out=True, body=body,
                              key=getattr(request.state, "api_key", None))


@router.post("/{contact}/opt-in", response_model=schemas.ConsentOut,
             summary="Record that the contact agreed again to receive messages")
async def opt_in(
    request: Request, contact: ContactPath, body: schemas.ConsentChange | None = None,
    phone_number_id: Annotated[str | None, Query(pattern=r"^\d{1,32}$")] = None,
) -> schemas.ConsentOut:
    ctx = context(request)
    return await _consent_out(ctx, number_id(ctx, phone_number_id), contact, True, opted_out=False, body=body,
                              key=getattr(request.state, "api_key", None))
