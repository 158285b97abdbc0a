"""Template management on `/{waba-id}/message_templates` (reference §4)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any, Final, Literal

from pydantic import Field

from waflow.cloudapi.errors import SCOPE_MANAGEMENT
from waflow.cloudapi.exceptions import MessageValidationError
from waflow.cloudapi.models import OpenWireModel, ResponseModel, SuccessResult
from waflow.cloudapi.transport import GraphTransport

TemplateCategory = Literal["MARKETING", "UTILITY", "AUTHENTICATION"]
DEFAULT_FIELDS: Final = "id,name,status,category,language,components,parameter_format,rejected_reason"
_NAME_RE: Final = re.compile(r"^[a-z0-9_]{1,512}$")


class TemplateInfo(ResponseModel):
    id: str
    name: str | None = None
    status: str | None = None  # APPROVED, PENDING, REJECTED, PAUSED, DISABLED, ...
    category: str | None = None
    language: str | None = None
    components: list[dict[str, Any]] = Field(default_factory=list)
    parameter_format: str | None = None
    rejected_reason: str | None = None

    @property
    def sendable(self) -> bool:
        return self.status == "APPROVED"


class Cursors(ResponseModel):
    before: str | None = None
    after: str | None = None


class Paging(ResponseModel):
    cursors: Cursors | None = None
    next: str | None = None
    previous: str | None = None


class TemplatePage(ResponseModel):
    data: list[TemplateInfo] = Field(default_factory=list)
    paging: Paging | None = None

    @property
    def after(self) -> str | None:
        """The cursor of the next page, None on the last page."""
        if self.paging is None or self.paging.next is None or self.paging.cursors is None:
            return None
        return self.paging.cursors.after


class TemplateCreated(ResponseModel):
    id: str
    status: str | None = None
    category: str | None = None


class TemplateDefinition(OpenWireModel):
    """A template to create. `components` use Meta's upper-case creation shape (HEADER, BODY, ...)."""

    name: str
    language: str
    category: TemplateCategory
    components: list[dict[str, Any]]
    parameter_format: Literal["positional", "named"] | None = None
    allow_category_change: bool | None = None

    def check(self) -> None:
        if not _NAME_RE.match(self.name):
            raise MessageValidationError(
                "name", "lowercase letters, digits and underscores only, 1 to 512 characters"
            )
        if not self.components:
            raise MessageValidationError("components", "a template needs at least a BODY component")
        for i, comp in enumerate(self.components):
            ctype = str(comp.get("type", "")).upper()
            text = comp.get("text")
            limit = {"HEADER": 60, "BODY": 1024, "FOOTER": 60}.get(ctype)
            if limit is not None and isinstance(text, str) and len(text) > limit:
                raise MessageValidationError(f"components[{i}].text", f"{len(text)} characters, at most {limit}")
            if ctype == "BUTTONS":
                buttons = comp.get("buttons") or []
                if len(buttons) > 10:
                    raise MessageValidationError(f"components[{i}].buttons", f"{len(buttons)} buttons, at most 10")
                for b, button in enumerate(buttons):
                    label = button.get("text") if isinstance(button, dict) else None
                    if isinstance(label, str) and len(label) > 25:
                        raise MessageValidationError(
                            f"components[{i}].buttons[{b}].text", f"{len(label)} characters, at most 25"
                        )


class TemplatesAPI:
    def __init__(self, transport: GraphTransport, waba_id: str | None) -> None:
        self._t = transport
        self._waba_id = waba_id

    def _waba(self) -> str:
        if not self._waba_id:
            raise ValueError("template management needs the client's waba_id")
        return self._waba_id

    async def list(
        self,
        *,
        limit: int | None = None,
        after: str | None = None,
        name: str | None = None,
        status: str | None = None,
        category: str | None = None,
        language: str | None = None,
        fields: str = DEFAULT_FIELDS,
    ) -> TemplatePage:
        """One page of templates; pass `page.after` back as `after` for the next one."""
        params: dict[str, Any] = {"fields": fields}
        for key, value in (("limit", limit), ("after", after), ("name", name), ("status", status),
                           ("category", category), ("language", language)):
            if value is not None:
                params[key] = value
        body = await self._t.request_json(
            "GET", f"{self._waba()}/message_templates", params=params, scope=SCOPE_MANAGEMENT
        )
        return TemplatePage.model_validate(body)

    async def iter_all(self, *, page_size: int = 100, **filters: str) -> AsyncIterator[TemplateInfo]:
        """Every template matching the filters, following the paging cursors."""
        after: str | None = None
        while True:
            page = await self.list(limit=page_size, after=after, **filters)
            for template in page.data:
                yield template
            after = page.after
            if after is None or not page.data:
                return

    async def create(self, definition: TemplateDefinition) -> TemplateCreated:
        definition.check()
        body = await self._t.request_json(
            "POST", f"{self._waba()}/message_templates", body=definition.wire(), scope=SCOPE_MANAGEMENT
        )
        return TemplateCreated.model_validate(body)

    async def get(self, template_id: str, *, fields: str = DEFAULT_FIELDS) -> TemplateInfo:
        body = await self._t.request_json("GET", template_id, params={"fields": fields}, scope=SCOPE_MANAGEMENT)
        return TemplateInfo.model_validate(body)

    async def status(self, template_id: str) -> str | None:
        return (await self.get(template_id, fields="id,status")).status

    async def delete(self, name: str, *, template_id: str | None = None) -> bool:
        """Delete every language of `name`, or only the one with `template_id` (hsm_id)."""
        params = {"name": name}
        if template_id is not None:
            params["hsm_id"] = template_id
        body = await self._t.request_json(
            "DELETE", f"{self._waba()}/message_templates", params=params, scope=SCOPE_MANAGEMENT
        )
        return SuccessResult.model_validate(body).success
