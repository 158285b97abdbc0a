"""Send any message (enqueued in the outbox, never sent inline) and read its status and history."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request

from waflow.api import queries, schemas
from waflow.api.auth import context, require_key
from waflow.api.errors import ApiError, problem
from waflow.api.numbers import number_id
from waflow.canonical import OutboundMessage
from waflow.cloudapi import MessageValidationError, validate_content
from waflow.outbox import ConsentRefused, enqueue_message, template_content

router = APIRouter(prefix="/api/v1/messages", tags=["messages"], dependencies=[Depends(require_key)])

Id = Annotated[int, Path(ge=1, le=2**62, description="the outbox id")]


def _check_content(body: schemas.SendMessage) -> None:
    try:
        validate_content(body.type, body.content if body.type != "contacts" else body.content.get("contacts"))
    except MessageValidationError as exc:
        field = f"body.content ({exc.path})" if exc.path else "body.content"
        raise ApiError(422, "invalid_message", str(exc), [problem(field, exc.problem)]) from None
    except (TypeError, AttributeError, KeyError, ValueError) as exc:  # a shape the validator did not expect
        raise ApiError(422, "invalid_message", f"content does not fit type {body.type!r}",
                       [problem("body.content", f"not a valid {body.type} object ({type(exc).__name__})")]) from None


@router.post("", status_code=202, response_model=schemas.Enqueued, summary="Queue a message (any type)")
async def send_message(body: schemas.SendMessage, request: Request) -> schemas.Enqueued:
    ctx = context(request)
    pnid = number_id(ctx, body.phone_number_id)
    _check_content(body)
    message = OutboundMessage(to=body.to, recipient=body.recipient, type=body.type, content=body.content,
                              reply_to=body.reply_to)
    fallback: dict[str, Any] | None = None
    if body.fallback_template is not None:
        fb = body.fallback_template
        fallback = template_content(fb.name, fb.language, fb.body)
    key = body.to or body.recipient or ""
    try:
        async with ctx.store.begin() as conn:
            initiated = body.business_initiated
            if initiated is None:
                initiated = not await ctx.store.contacts.window_open(conn, pnid, key)
            oid = await enqueue_message(
                ctx.store, pnid, message, business_initiated=initiated, fallback_template=fallback, conn=conn
            )
    except ConsentRefused as exc:
        raise ApiError(409, "opted_out", f"contact {exc.contact_key!r}: {exc.reason}") from None
    ctx.notify_outbox()
    return schemas.Enqueued(id=oid)


@router.get("", response_model=schemas.MessageList, summary="Outbound messages, newest first")
async def list_messages(
    request: Request,
    phone_number_id: Annotated[str | None, Query(pattern=r"^\d{1,32}$")] = None,
    contact: Annotated[str | None, Query(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9+._\-]+$")] = None,
    status: Annotated[
        str | None, Query(pattern=r"^(queued|accepted|sent|delivered|read|played|failed)$")
    ] = None,
    before: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> schemas.MessageList:
    ctx = context(request)
    async with ctx.store.read() as conn:
        rows, nxt = await queries.list_messages(
            conn, phone_number_id=phone_number_id, contact_key=contact, status=status, before=before, limit=limit,
            numbers=list(ctx.clients),  # a contact's messages are read per number: (number, contact, id) ranges
        )
    return schemas.MessageList(items=[queries.message_out(r) for r in rows], next_before=nxt)


@router.get("/{message_id}", response_model=schemas.MessageDetail, summary="A message's status and history")
async def get_message(message_id: Id, request: Request) -> schemas.MessageDetail:
    ctx = context(request)
    async with ctx.store.read() as conn:
        history = await ctx.store.outbox.history(conn, message_id)
    if history is None:
        raise ApiError(404, "not_found", f"no outbound message {message_id}")
    return queries.message_detail(history)
