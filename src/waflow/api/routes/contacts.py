"""Contacts, their 24 h window, and their message timeline."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request

from waflow.api import queries, schemas
from waflow.api.auth import context, require_key
from waflow.api.errors import ApiError
from waflow.api.numbers import number_id

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
