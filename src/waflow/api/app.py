"""The admin API as a FastAPI app (OpenAPI at `/docs`); the server adds the webhook routes and the lifespan."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from fastapi import FastAPI

from waflow import __version__
from waflow.api.context import ApiContext
from waflow.api.errors import install_error_handlers
from waflow.api.routes import campaigns, contacts, flows, health, messages, sessions, templates

DESCRIPTION = """\
waflow's admin API. Every `/api/v1` call needs `Authorization: Bearer <key>` (a key from `api.keys`).

Sends are queued in the durable outbox (202 with the outbox id) and leave through the dispatcher,
within the number's limits; `GET /api/v1/messages/{id}` follows their status.
"""


def create_api(
    ctx: ApiContext,
    *,
    docs: bool = True,
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[Any]] | None = None,
) -> FastAPI:
    app = FastAPI(
        title="waflow admin API",
        version=__version__,
        description=DESCRIPTION,
        docs_url="/docs" if docs else None,
        redoc_url=None,
        openapi_url="/openapi.json" if docs else None,
        lifespan=lifespan,
    )
    app.state.api = ctx
    install_error_handlers(app)
    for module in (health, messages, contacts, sessions, flows, templates, campaigns):
        app.include_router(module.router)
    return app


