"""`/healthz` (the process answers), `/readyz` (database reachable, schema current), `/metrics` (Prometheus)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

import waflow.outbox.metrics
import waflow.webhooks.metrics  # noqa: F401  (the parts' metrics: one registry, whatever runs in this process)
from waflow.api import schemas
from waflow.api.auth import context, key_matches
from waflow.api.errors import ApiError

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=schemas.Health, summary="The process is up")
async def healthz() -> schemas.Health:
    return schemas.Health()


@router.get(
    "/readyz",
    response_model=schemas.Readiness,
    responses={503: {"model": schemas.Readiness}},
    summary="The database is reachable and its schema is current",
)
async def readyz(request: Request) -> JSONResponse:
    ctx = context(request)
    checks: dict[str, str] = {}
    try:
        async with asyncio.timeout(2.0):
            current = await ctx.store.is_current()
        checks["database"] = "ok" if current else "schema is not at the newest revision (run `waflow db upgrade`)"
    except Exception as exc:
        checks["database"] = f"unreachable ({type(exc).__name__})"
    for name, check in ctx.ready_checks.items():
        try:
            async with asyncio.timeout(2.0):
                problem = await check()
        except Exception as exc:
            problem = f"failed ({type(exc).__name__})"
        checks[name] = problem or "ok"
    ready = all(v == "ok" for v in checks.values())
    body = schemas.Readiness(ready=ready, checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)


async def _metrics(request: Request) -> Response:
    ctx = context(request)
    if ctx.refresh_gauges is not None:
        try:
            async with asyncio.timeout(2.0):
                await ctx.refresh_gauges()
        except Exception:  # stale gauges beat no metrics
            pass
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    ctx = context(request)
    if not ctx.public_metrics:
        scheme, _, key = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not key_matches(key.strip(), tuple(ctx.key_hashes)):
            raise ApiError(401, "unauthorized", "the API key is missing or not valid")
    return await _metrics(request)
