"""Flows: upload (validate → deploy as a new immutable version), list versions, start for a contact."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request

from waflow.api import engine_ops, schemas
from waflow.api.auth import context, require_key
from waflow.api.deploying import FlowRejected, deploy_text
from waflow.api.errors import ApiError, problem
from waflow.api.numbers import number_id
from waflow.engine.flows.loader import Format
from waflow.engine.flows.problems import FlowProblem
from waflow.store.flows import FlowVersionRecord, FlowVersionRepository

router = APIRouter(prefix="/api/v1/flows", tags=["flows"], dependencies=[Depends(require_key)])
_versions = FlowVersionRepository()
MAX_FLOW_BYTES = 1_000_000
FlowId = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_\-]+$")]

_UPLOAD_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "the flow document, as JSON or YAML (see `waflow flow schema`)",
        "content": {
            "application/json": {"schema": {"type": "object"}},
            "application/yaml": {"schema": {"type": "string"}},
        },
    }
}


def _problem_out(p: FlowProblem) -> schemas.FlowProblemOut:
    return schemas.FlowProblemOut(severity=p.severity.value, code=p.code, message=p.message, node=p.node,
                                  field=p.field, line=p.line)


def _version_out(r: FlowVersionRecord) -> schemas.FlowVersionOut:
    name = r.definition.get("name") if isinstance(r.definition, dict) else None
    return schemas.FlowVersionOut(flow_id=r.flow_id, version=r.version, content_hash=r.content_hash, active=r.active,
                                  deployed_at=r.deployed_at, name=name if isinstance(name, str) else None)


@router.post(
    "", status_code=201, response_model=schemas.Deployed, openapi_extra=_UPLOAD_DOC,
    summary="Upload a flow (YAML or JSON): validated, then deployed as its newest version",
    responses={422: {"description": "the flow has problems (each with node, field and line)"}},
)
async def deploy_flow(request: Request) -> schemas.Deployed:
    ctx = context(request)
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    fmt: Format = "json" if ctype.endswith("json") else "yaml" if "yaml" in ctype else "auto"
    body = await request.body()
    if len(body) > MAX_FLOW_BYTES:
        raise ApiError(413, "too_large", f"a flow document may have at most {MAX_FLOW_BYTES} bytes")
    if not body.strip():
        raise ApiError(422, "invalid_flow", "the request body is empty: send the flow as YAML or JSON",
                       [problem("body", "empty")])
    try:
        result = await deploy_text(ctx.store, body, fmt=fmt, source="upload")
    except FlowRejected as exc:
        problems = [{**_problem_out(p).model_dump(), "field": p.field} for p in exc.problems]
        raise ApiError(422, "invalid_flow", f"the flow has {len(problems)} problem(s)", problems) from None
    return schemas.Deployed(flow_id=result.flow_id, version=result.version, content_hash=result.content_hash,
                            created=result.created, warnings=[_problem_out(p) for p in result.warnings])


@router.get("", response_model=schemas.FlowList, summary="The active version of every flow")
async def list_flows(request: Request) -> schemas.FlowList:
    ctx = context(request)
    async with ctx.store.read() as conn:
        records = await _versions.all_active(conn)
    return schemas.FlowList(items=[_version_out(r) for r in records])


@router.get("/{flow_id}/versions", response_model=schemas.FlowList, summary="Every version of a flow")
async def flow_versions(flow_id: FlowId, request: Request) -> schemas.FlowList:
    ctx = context(request)
    async with ctx.store.read() as conn:
        records = await _versions.history(conn, flow_id)
    if not records:
        raise ApiError(404, "not_found", f"flow {flow_id!r} was never deployed")
    return schemas.FlowList(items=[_version_out(r) for r in records])


@router.post("/{flow_id}/start", status_code=202, response_model=schemas.FlowStarted,
             summary="Start a flow for a contact (replaces its active session)")
async def start_flow(flow_id: FlowId, body: schemas.StartFlow, request: Request) -> schemas.FlowStarted:
    ctx = context(request)
    pnid = number_id(ctx, body.phone_number_id)
    contact = body.to.lstrip("+")
    try:
        async with ctx.store.begin() as conn:
            started = await engine_ops.start_flow(conn, pnid, contact, flow_id, body.vars)
    except engine_ops.FlowStartRefused as exc:
        if exc.reason == "not_deployed":
            raise ApiError(404, "not_found", str(exc)) from None
        raise ApiError(409, exc.reason, str(exc)) from None
    return schemas.FlowStarted(event_id=started.event_id, flow_id=started.flow_id, version=started.version)
