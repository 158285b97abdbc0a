"""Shared pieces of the webhook tests: a uvicorn server on a free port, signed POSTs, DB reads."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import uvicorn
from sqlalchemy import select

from waflow.store import Store
from waflow.store.tables import contacts, dead_letters, inbound_events
from waflow.webhooks import WebhookConfig, create_webhook_app

PNID = "106540352242922"
WABA = "102290129340398"
SECRET = "test-app-secret"
TOKEN = "test-verify-token"
PNID_B = "200000000000002"  # a second number, of another app
WABA_B = "200000000000099"
SECRET_B = "other-app-secret"
TOKEN_B = "other-verify-token"


def config(**kw: Any) -> WebhookConfig:
    return WebhookConfig.model_validate(
        {
            "numbers": {
                PNID: {"app_secret": SECRET, "verify_token": TOKEN, "waba_id": WABA},
                PNID_B: {"app_secret": SECRET_B, "verify_token": TOKEN_B, "waba_id": WABA_B},
            },
            **kw,
        }
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wire(doc: Any) -> bytes:
    return json.dumps(doc, ensure_ascii=True, separators=(",", ":")).encode()


def signature(body: bytes, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


async def post(client: httpx.AsyncClient, url: str, body: bytes | Any, secret: str | None = SECRET,
               **headers: str) -> httpx.Response:
    raw = body if isinstance(body, bytes) else wire(body)
    h = {"Content-Type": "application/json", **headers}
    if secret is not None:
        h["X-Hub-Signature-256"] = signature(raw, secret)
    return await client.post(url, content=raw, headers=h)


@contextlib.asynccontextmanager
async def serve(store: Store, cfg: WebhookConfig | None = None, path: str = "/webhook") -> AsyncIterator[str]:
    """The webhook app under uvicorn on a free localhost port; yields its URL."""
    port = free_port()
    app = create_webhook_app(cfg or config(), store, path=path)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve())
    for _ in range(500):
        if server.started:
            break
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}{path}"
    finally:
        server.should_exit = True
        await task


async def inbox_rows(store: Store) -> list[dict[str, Any]]:
    async with store.read() as conn:
        rows = await conn.execute(select(inbound_events).order_by(inbound_events.c.id))
        return [dict(r._mapping) for r in rows]


async def dead_letter_rows(store: Store) -> list[dict[str, Any]]:
    async with store.read() as conn:
        rows = await conn.execute(select(dead_letters).order_by(dead_letters.c.id))
        return [dict(r._mapping) for r in rows]


async def contact_rows(store: Store) -> list[dict[str, Any]]:
    async with store.read() as conn:
        rows = await conn.execute(select(contacts).order_by(contacts.c.id))
        return [dict(r._mapping) for r in rows]
