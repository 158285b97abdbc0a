"""Campaigns: one template message per contact, queued in one transaction; pause, resume, progress."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request

from waflow.api import schemas
from waflow.api.auth import context, require_key
from waflow.api.errors import ApiError, problem
from waflow.api.numbers import number_id
from waflow.outbox import CampaignProgress, campaign_progress, enqueue_campaign, pause_campaign, resume_campaign
from waflow.outbox.campaigns import contact_number
from waflow.store.campaigns import CampaignRepository

router = APIRouter(prefix="/api/v1/campaigns", tags=["campaigns"], dependencies=[Depends(require_key)])
CampaignId = Annotated[int, Path(ge=1, le=2**62)]


def _out(p: CampaignProgress) -> schemas.CampaignOut:
    return schemas.CampaignOut(id=p.id, name=p.name, status=p.status, total=p.total, queued=p.queued, sent=p.sent,
                               delivered=p.delivered, read=p.read, failed=p.failed, skipped=p.skipped,
                               finished=p.finished)


async def _progress(request: Request, campaign_id: int) -> schemas.CampaignOut:
    progress = await campaign_progress(context(request).store, campaign_id)
    if progress is None:
        raise ApiError(404, "not_found", f"no campaign {campaign_id}")
    return _out(progress)


@router.post("", status_code=201, response_model=schemas.CampaignOut, summary="Create and start a campaign")
async def create_campaign(body: schemas.CreateCampaign, request: Request) -> schemas.CampaignOut:
    ctx = context(request)
    pnid = number_id(ctx, body.phone_number_id)
    problems = []
    for i, row in enumerate(body.contacts):
        try:
            if len(contact_number({k: ("" if v is None else str(v)) for k, v in row.items()})) < 6:
                problems.append(problem(f"body.contacts[{i}]", "the phone number has fewer than 6 digits"))
        except ValueError as exc:
            problems.append(problem(f"body.contacts[{i}]", str(exc).split(":")[0]))
        if len(problems) >= 20:
            break
    if problems:
        raise ApiError(422, "invalid_contacts", f"{len(problems)} contact row(s) are unusable", problems)
    cid = await enqueue_campaign(
        ctx.store, name=body.name, phone_number_id=pnid, template=body.template, language=body.language,
        contacts=body.contacts, params=body.params,
    )
    ctx.notify_outbox()
    return await _progress(request, cid)


@router.get("", response_model=schemas.CampaignList, summary="Recent campaigns with their progress")
async def list_campaigns(request: Request, limit: Annotated[int, Query(ge=1, le=200)] = 50) -> schemas.CampaignList:
    ctx = context(request)
    async with ctx.store.read() as conn:
        ids = [c.id for c in await CampaignRepository().recent(conn, limit)]
    items = []
    for cid in ids:
        progress = await campaign_progress(ctx.store, cid)
        if progress is not None:
            items.append(_out(progress))
    return schemas.CampaignList(items=items)


@router.get("/{campaign_id}", response_model=schemas.CampaignOut, summary="A campaign's progress")
async def get_campaign(campaign_id: CampaignId, request: Request) -> schemas.CampaignOut:
    return await _progress(request, campaign_id)


@router.post("/{campaign_id}/pause", response_model=schemas.CampaignOut, summary="Pause (queued messages wait)")
async def pause(campaign_id: CampaignId, request: Request) -> schemas.CampaignOut:
    current = await _progress(request, campaign_id)
    if not await pause_campaign(context(request).store, campaign_id):
        raise ApiError(409, "not_running", f"campaign {campaign_id} is {current.status}, not running")
    return await _progress(request, campaign_id)


@router.post("/{campaign_id}/resume", response_model=schemas.CampaignOut, summary="Resume a paused campaign")
async def resume(campaign_id: CampaignId, request: Request) -> schemas.CampaignOut:
    current = await _progress(request, campaign_id)
    if not await resume_campaign(context(request).store, campaign_id):
        raise ApiError(409, "not_paused", f"campaign {campaign_id} is {current.status}, not paused")
    ctx = context(request)
    ctx.notify_outbox()
    return await _progress(request, campaign_id)
