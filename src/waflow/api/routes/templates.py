"""Message templates, through the Cloud API client of the chosen number (its WABA)."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Annotated, TypeVar

from fastapi import APIRouter, Depends, Path, Query, Request

from waflow.api import schemas
from waflow.api.auth import context, require_key
from waflow.api.errors import ApiError, problem
from waflow.api.numbers import client_for
from waflow.cloudapi import CloudAPIError, CloudClientError, MessageValidationError, TemplateDefinition
from waflow.cloudapi.tokens import TokenUnavailableError

router = APIRouter(prefix="/api/v1/templates", tags=["templates"], dependencies=[Depends(require_key)])
T = TypeVar("T")
NumberQuery = Annotated[str | None, Query(pattern=r"^\d{1,32}$", description="whose WABA (default: first number)")]


async def _call(call: Awaitable[T]) -> T:
    try:
        return await call
    except MessageValidationError as exc:
        raise ApiError(422, "invalid_template", str(exc), [problem(f"body.{exc.path}", exc.problem)]) from None
    except CloudAPIError as exc:
        status = {400: 422, 404: 404}.get(exc.http_status or 0, 502)  # a refused parameter is the caller's
        raise ApiError(status, "cloud_api", f"the Cloud API refused: {exc}") from None
    except (CloudClientError, TokenUnavailableError) as exc:
        reason = type(exc).__name__
        raise ApiError(502, "cloud_api_unreachable", f"the Cloud API could not be reached: {reason}") from None
    except ValueError as exc:  # e.g. the number has no waba_id configured
        raise ApiError(409, "not_configured", str(exc)) from None


@router.get("", response_model=schemas.TemplateList, summary="Templates of the WABA (one page)")
async def list_templates(
    request: Request,
    phone_number_id: NumberQuery = None,
    limit: Annotated[int, Query(ge=1, le=250)] = 100,
    after: Annotated[str | None, Query(min_length=1, max_length=512, pattern=r"^[A-Za-z0-9=_\-]+$")] = None,
    name: Annotated[str | None, Query(pattern=r"^[a-z0-9_]{1,512}$")] = None,
    status: Annotated[str | None, Query(pattern=r"^[A-Z_]{1,32}$")] = None,
) -> schemas.TemplateList:
    client = client_for(context(request), phone_number_id)
    page = await _call(client.templates.list(limit=limit, after=after, name=name, status=status))
    return schemas.TemplateList(items=[schemas.TemplateOut.model_validate(t.model_dump()) for t in page.data],
                                after=page.after)


@router.post("", status_code=201, response_model=schemas.TemplateCreatedOut, summary="Submit a template for review")
async def create_template(body: schemas.CreateTemplate, request: Request) -> schemas.TemplateCreatedOut:
    client = client_for(context(request), body.phone_number_id)
    definition = TemplateDefinition(name=body.name, language=body.language, category=body.category,
                                    components=body.components)
    created = await _call(client.templates.create(definition))
    return schemas.TemplateCreatedOut(id=created.id, status=created.status, category=created.category)


@router.get("/{template_id}", response_model=schemas.TemplateOut, summary="A template and its review status")
async def get_template(
    template_id: Annotated[str, Path(pattern=r"^\d{1,32}$")], request: Request, phone_number_id: NumberQuery = None
) -> schemas.TemplateOut:
    client = client_for(context(request), phone_number_id)
    info = await _call(client.templates.get(template_id))
    return schemas.TemplateOut.model_validate(info.model_dump())


@router.delete("/{name}", response_model=schemas.TemplateDeleted, summary="Delete a template (all languages)")
async def delete_template(
    name: Annotated[str, Path(pattern=r"^[a-z0-9_]{1,512}$")],
    request: Request,
    phone_number_id: NumberQuery = None,
    template_id: Annotated[str | None, Query(pattern=r"^\d{1,32}$", description="only this language's id")] = None,
) -> schemas.TemplateDeleted:
    client = client_for(context(request), phone_number_id)
    deleted = await _call(client.templates.delete(name, template_id=template_id))
    return schemas.TemplateDeleted(deleted=deleted)
