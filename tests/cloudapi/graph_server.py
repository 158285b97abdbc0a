"""A tiny scriptable Graph-API-shaped server on a real localhost socket.

For what the emulator cannot do on purpose (an exact error body, a header, a trickling answer).
Tests set `server.handler` to a function of the recorded request returning a Starlette response.
"""

from __future__ import annotations

import asyncio
import email.policy
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from email.parser import BytesParser
from typing import Any

import orjson
import uvicorn
from starlette.requests import Request
from starlette.responses import JSONResponse, Response


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    form: dict[str, Any] = field(default_factory=dict)

    def json(self) -> Any:
        return orjson.loads(self.body)


Handler = Callable[[Recorded], Awaitable[Response] | Response]


def graph_error(code: int, message: str, *, status: int = 400, details: str | None = None, **extra: Any) -> Response:
    err: dict[str, Any] = {"message": message, "type": "OAuthException", "code": code,
                           "fbtrace_id": "AbCdEfGhIjK"}
    if details is not None:
        err["error_data"] = {"messaging_product": "whatsapp", "details": details}
    err.update(extra)
    return JSONResponse({"error": err}, status_code=status)


def sent(to: str = "34600111222", wamid: str = "wamid.TEST") -> Response:
    return JSONResponse({"messaging_product": "whatsapp", "contacts": [{"input": to, "wa_id": to.lstrip("+")}],
                         "messages": [{"id": wamid}]})


class GraphServer:
    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.handler: Handler = lambda r: sent()
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        body = await request.body()
        ctype = request.headers.get("content-type", "")
        form = _parse_multipart(ctype, body) if ctype.startswith("multipart/") else {}
        rec = Recorded(request.method, request.url.path, dict(request.query_params), dict(request.headers), body, form)
        self.requests.append(rec)
        result = self.handler(rec)
        response = await result if asyncio.iscoroutine(result) else result
        assert isinstance(response, Response)
        await response(scope, receive, send)


def _parse_multipart(content_type: str, body: bytes) -> dict[str, Any]:
    """Fields as str, files as (filename, content type, bytes); stdlib only (no python-multipart here)."""
    message = BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body
    )
    form: dict[str, Any] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True) or b""
        filename = part.get_filename()
        if filename is not None:
            form[str(name)] = (filename, part.get_content_type(), payload)
        else:
            form[str(name)] = payload.decode()
    return form


def free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@asynccontextmanager
async def run_graph_server() -> AsyncIterator[GraphServer]:
    app = GraphServer()
    # Port 0 bound by uvicorn itself: handing it a pre-bound socket costs ~40 ms per request
    # (delayed-ACK stall) on this platform.
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off",
                            timeout_graceful_shutdown=1)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.005)
    app.port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield app
    finally:
        server.should_exit = True
        server.force_exit = True
        await asyncio.wait_for(task, 5)


@asynccontextmanager
async def run_raw_server(on_connection: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
                         ) -> AsyncIterator[str]:
    """A bare TCP server for misbehaviour HTTP servers won't do (drop the socket mid-request)."""
    server = await asyncio.start_server(on_connection, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        await server.wait_closed()
