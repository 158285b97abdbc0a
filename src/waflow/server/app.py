"""`create_app(settings)`: the one ASGI app of `waflow serve` — webhook endpoint, admin API, background parts."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from waflow.api import ApiContext, create_api
from waflow.config import Settings
from waflow.server import metrics
from waflow.server.lifecycle import Lifecycle
from waflow.server.parts import Parts, build_parts

log = logging.getLogger("waflow.server")


def api_context(parts: Parts) -> ApiContext:
    settings = parts.settings

    async def refresh() -> None:
        await metrics.refresh_gauges(parts)

    ready_checks: dict[str, Callable[[], Awaitable[str | None]]] = {}
    watch = parts.token_watch
    if watch is not None:

        async def access_token() -> str | None:
            return watch.readiness()

        ready_checks["access_token"] = access_token
    if parts.dispatchers:

        async def rate_limiter() -> str | None:  # a dispatcher paused because the shared limiter (Redis) is down
            return next((p for d in parts.dispatchers if (p := d.limiter_problem) is not None), None)

        ready_checks["rate_limiter"] = rate_limiter

    return ApiContext(
        store=parts.store,
        clients=parts.clients,
        key_hashes=[k.get_secret_value() for k in settings.api.keys],
        notify_outbox=parts.notify_outbox,
        public_metrics=settings.api.public_metrics,
        refresh_gauges=refresh,
        ready_checks=ready_checks,
    )


def health_app(parts: Parts) -> FastAPI:
    """`waflow worker`'s HTTP face: `/healthz`, `/readyz` (database, rate limiter) and `/metrics` only (the same
    routes and rules as `waflow serve`'s; `/metrics` needs a key unless `api.public_metrics`)."""
    from waflow.api.errors import install_error_handlers
    from waflow.api.routes import health

    app = FastAPI(title="waflow worker", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.api = api_context(parts)
    install_error_handlers(app)
    app.include_router(health.router)
    return app


def create_app(settings: Settings, *, parts: Parts | None = None) -> FastAPI:
    """The app; its lifespan starts every part (migrating the database first) and stops them gracefully."""
    parts = parts or build_parts(settings, "serve")
    lifecycle = Lifecycle(parts)
    metrics.track(parts)
    if not settings.api.keys:
        log.warning("api.keys is empty: every admin API call is refused (401)")

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await lifecycle.start()
        try:
            yield
        finally:
            await lifecycle.stop()

    app = create_api(api_context(parts), docs=settings.api.docs, lifespan=lifespan)
    assert parts.receiver is not None
    app.router.routes.extend(parts.receiver.routes)
    app.state.parts = parts
    app.state.lifecycle = lifecycle
    return app


class ServeApp:
    """What `waflow serve` hands to uvicorn: webhook POSTs go straight to the receiver's raw ASGI handler, the
    rest (admin API, metrics, the GET handshake, lifespan) to the FastAPI app.

    FastAPI's middleware stack, routing and `Request` object cost about as much CPU per webhook as storing
    it (profile of `bench.e2e_latency`: ~7% of the server's CPU at 50 conversations/s, where ~4 webhooks
    arrive per conversation), for nothing the endpoint uses: it does its own size limit, signature check
    and error answers (`WebhookReceiver.asgi_post`, as the standalone `create_webhook_app` serves it).
    """

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        parts: Parts = app.state.parts
        assert parts.receiver is not None
        self.receiver = parts.receiver

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"] == self.receiver.path:
            await self.receiver.asgi_post(scope, receive, send)
            return
        await self.app(scope, receive, send)
