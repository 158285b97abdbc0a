"""Conversations (sessions): list, read with their timeline, end; agent replies and hand-back in handoff."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request

from waflow.api import engine_ops, queries, schemas
from waflow.api.auth import context, require_key
from waflow.api.errors import ApiError

router = APIRouter(prefix="/api/v1", tags=["conversations"], dependencies=[Depends(require_key)])

SessionId = Annotated[int, Path(ge=1, le=2**62)]
State = Annotated[str | None, Query(pattern=r"^(running|waiting|handoff|ended)$")]


@router.get("/sessions", response_model=schemas.SessionList, summary="Conversations, newest first")
async def list_sessions(
    request: Request,
    state: State = None,
    flow_id: Annotated[str | None, Query(min_length=1, max_length=128)] = None,
    before: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> schemas.SessionList:
    ctx = context(request)
    async with ctx.store.read() as conn:
        rows, nxt = await queries.list_sessions(conn, state=state, flow_id=flow_id, before=before, limit=limit)
    return schemas.SessionList(items=[queries.session_out(s, c) for s, c in rows], next_before=nxt)


@router.get("/sessions/{session_id}", response_model=schemas.SessionDetail, summary="A conversation and its messages")
async def get_session(
    session_id: SessionId, request: Request, limit: Annotated[int, Query(ge=1, le=500)] = 100
) -> schemas.SessionDetail:
    ctx = context(request)
    async with ctx.store.read() as conn:
        found = await queries.session_with_contact(conn, session_id)
        if found is None:
            raise ApiError(404, "not_found", f"no session {session_id}")
        s, c = found
        timeline = await queries.timeline(conn, c.phone_number_id, c.contact_key, since=s.started_at, limit=limit)
    return schemas.SessionDetail(**queries.session_out(s, c).model_dump(), timeline=timeline)


@router.post("/sessions/{session_id}/end", response_model=schemas.Ended, summary="End a conversation")
async def end_session(session_id: SessionId, request: Request, body: schemas.EndSession | None = None) -> schemas.Ended:
    ctx = context(request)
    reason = body.reason if body else "ended by admin"
    async with ctx.store.begin() as conn:
        if await ctx.store.sessions.get(conn, session_id) is None:
            raise ApiError(404, "not_found", f"no session {session_id}")
        ended = await engine_ops.end_session(conn, session_id, reason)
    return schemas.Ended(ended=ended)


def _engine_error(exc: engine_ops.EngineError) -> ApiError:
    if isinstance(exc, engine_ops.SessionNotFound):
        return ApiError(404, "not_found", str(exc))
    if isinstance(exc, engine_ops.NotInHandoff):
        return ApiError(409, "not_in_handoff", str(exc))
    if isinstance(exc, engine_ops.WindowClosed):
        return ApiError(409, "window_closed", str(exc))
    if isinstance(exc, engine_ops.ContactOptedOut):
        return ApiError(409, "opted_out", str(exc))
    return ApiError(409, "refused", str(exc))


@router.post("/sessions/{session_id}/reply", status_code=202, response_model=schemas.Enqueued,
             summary="An agent's reply to a conversation in handoff")
async def agent_reply(session_id: SessionId, body: schemas.AgentReply, request: Request) -> schemas.Enqueued:
    ctx = context(request)
    try:
        async with ctx.store.begin() as conn:
            oid = await engine_ops.agent_reply(conn, session_id, body.text)
    except engine_ops.EngineError as exc:
        raise _engine_error(exc) from None
    ctx.notify_outbox()
    return schemas.Enqueued(id=oid)


@router.post("/sessions/{session_id}/hand-back", status_code=202, response_model=schemas.HandedBack,
             summary="Give a conversation in handoff back to its flow")
async def hand_back(
    session_id: SessionId, request: Request, body: schemas.HandBack | None = None
) -> schemas.HandedBack:
    ctx = context(request)
    try:
        async with ctx.store.begin() as conn:
            event_id = await engine_ops.hand_back(conn, session_id, body.node if body else None)
    except engine_ops.EngineError as exc:
        raise _engine_error(exc) from None
    except ValueError as exc:
        raise ApiError(422, "unknown_node", str(exc), [{"field": "body.node", "message": str(exc)}]) from None
    return schemas.HandedBack(event_id=event_id)


@router.get("/handoff", response_model=schemas.HandoffList, summary="Conversations waiting for a person")
async def handoff_inbox(
    request: Request,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    messages: Annotated[int, Query(ge=1, le=200)] = 20,
) -> schemas.HandoffList:
    ctx = context(request)
    async with ctx.store.read() as conn:
        queue = await queries.handoff_queue(conn, limit=limit, messages=messages)
    return schemas.HandoffList(
        items=[schemas.HandoffItem(session=queries.session_out(s, c), timeline=t) for s, c, t in queue]
    )
