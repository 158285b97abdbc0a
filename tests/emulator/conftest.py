"""Fixtures: a running emulator on a real socket, a recording webhook receiver, an httpx client.

Other parts' tests can use `emulator` (an `EmulatorHandle`) and `webhook_sink` the same way, or
call `waflow.emulator.run_emulator` directly.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from waflow.emulator import EmulatorConfig, EmulatorHandle, run_emulator, serve_asgi

APP_SECRET = "test-app-secret"
VERIFY_TOKEN = "test-verify-token"


@dataclass
class Received:
    body: bytes
    headers: dict[str, str]

    def json(self) -> Any:
        return json.loads(self.body)

    def signature_ok(self, secret: str = APP_SECRET) -> bool:
        want = "sha256=" + hmac.new(secret.encode(), self.body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(want, self.headers.get("x-hub-signature-256", ""))


@dataclass
class WebhookSink:
    """A receiver like an app's webhook endpoint; `fail_next` answers that many POSTs with `fail_status`."""

    url: str = ""
    received: list[Received] = field(default_factory=list)
    fail_next: int = 0
    fail_status: int = 500
    answered: list[int] = field(default_factory=list)

    def payloads(self) -> list[Any]:
        return [r.json() for r in self.received if r.headers.get("_answered") == "200"]

    def items(self, kind: str) -> list[dict[str, Any]]:
        """Every `messages` / `statuses` item from accepted POSTs, in arrival order."""
        out: list[dict[str, Any]] = []
        for p in self.payloads():
            for entry in p["entry"]:
                for change in entry["changes"]:
                    out.extend(change["value"].get(kind, []))
        return out

    def statuses(self, wamid: str) -> list[str]:
        return [s["status"] for s in self.items("statuses") if s["id"] == wamid]

    async def wait_for(self, predicate: Any, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        async with asyncio.timeout(timeout):
            while not predicate():  # noqa: ASYNC110  (polling what the receiver recorded)
                await asyncio.sleep(0.005)

    def app(self) -> Starlette:
        async def post(request: Request) -> Response:
            body = await request.body()
            status = 200
            if self.fail_next > 0:
                self.fail_next -= 1
                status = self.fail_status
            headers = dict(request.headers) | {"_answered": str(status)}
            self.received.append(Received(body, headers))
            self.answered.append(status)
            return PlainTextResponse("ok" if status == 200 else "nope", status_code=status)

        async def get(request: Request) -> Response:
            q = request.query_params
            if q.get("hub.mode") == "subscribe" and q.get("hub.verify_token") == VERIFY_TOKEN:
                return PlainTextResponse(q.get("hub.challenge", ""))
            return PlainTextResponse("forbidden", status_code=403)

        return Starlette(routes=[Route("/webhook", post, methods=["POST"]), Route("/webhook", get)])


@pytest.fixture
async def webhook_sink() -> AsyncIterator[WebhookSink]:
    sink = WebhookSink()
    async with serve_asgi(sink.app()) as base:
        sink.url = base + "/webhook"
        yield sink


def make_config(sink: WebhookSink | None, **kw: Any) -> EmulatorConfig:
    return EmulatorConfig(
        callback_url=sink.url if sink else None,
        app_secret=APP_SECRET,
        verify_token=VERIFY_TOKEN,
        status_delays={"sent": 0.0, "delivered": 0.01, "read": 0.02},
        webhook_retry_schedule=[0.01, 0.02, 0.04],
        **kw,
    )


@pytest.fixture
async def emulator(webhook_sink: WebhookSink) -> AsyncIterator[EmulatorHandle]:
    async with run_emulator(make_config(webhook_sink)) as emu:
        yield emu


@pytest.fixture
async def client(emulator: EmulatorHandle) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=emulator.graph_url, headers={"Authorization": f"Bearer {emulator.config.access_token}"}, timeout=10
    ) as c:
        yield c


def msg(to: str = "34600111222", **kw: Any) -> dict[str, Any]:
    """A send body; `kw` adds `type` and its object."""
    return {"messaging_product": "whatsapp", "recipient_type": "individual", "to": to, **kw}
