"""Which configured business number a request means."""

from __future__ import annotations

from waflow.api.context import ApiContext
from waflow.api.errors import ApiError, problem
from waflow.cloudapi import CloudAPIClient


def number_id(ctx: ApiContext, requested: str | None) -> str:
    if requested is None:
        return ctx.default_number()
    if requested not in ctx.clients:
        raise ApiError(
            422, "unknown_number", f"phone_number_id {requested} is not configured",
            [problem("phone_number_id", f"not one of {', '.join(ctx.clients)}")],
        )
    return requested


def client_for(ctx: ApiContext, requested: str | None) -> CloudAPIClient:
    return ctx.clients[number_id(ctx, requested)]
