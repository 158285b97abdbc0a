"""Bounded intake of a real `waflow serve` process, over real sockets: credentials are checked before any body is
read, bodies are bounded while they stream, slow clients get deadlines, connections are limited.

Every test leaves from its own 127.0.0.x source address; the process has short deadlines (headers 1 s, bodies
0.5 s), a small per-address connection limit and failure budget (3), and a slow lane of 8 connections/s. A
request that the old code would have waited on forever (a body never sent) is bounded here by the answer's own
timeout, and fails there."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from waflow.emulator import EmulatorConfig, EmulatorHandle, run_emulator
from waflow.server.testing import API_KEY, ServeProcess, free_port, write_config

from .intake_helpers import Raw, client, message_body, request_head, signed

pytestmark = pytest.mark.asyncio(loop_scope="module")
AUTH = {"Authorization": f"Bearer {API_KEY}"}
DEADLINE_S = 0.5  # body
HEADER_S = 1.0  # headers: a connection held in the slow lane spends its wait from this too
LANE_PER_S = 8.0


class Served:
    def __init__(self, serve: ServeProcess, emu: EmulatorHandle) -> None:
        self.serve = serve
        self.emu = emu
        self.port = serve.port
        self.url = serve.url


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def served(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Served]:
    tmp_path = tmp_path_factory.mktemp("intake")
    async with run_emulator(EmulatorConfig(app_secret="intake-app-secret", verify_token="intake-vt")) as emu:
        port = free_port()
        config = write_config(tmp_path, emu, port=port, server={
            "run_engine": False, "run_dispatcher": False, "header_timeout_s": HEADER_S,
            "body_timeout_s": DEADLINE_S, "max_connections_per_address": 3, "max_header_bytes": 8192,
            "auth_failures_burst": 3, "auth_failures_per_s": 0.001, "penalized_connections_per_s": LANE_PER_S,
        })
        serve = ServeProcess(config, port)
        await serve.start()
        try:
            yield Served(serve, emu)
        finally:
            assert await serve.stop() == 0, serve.log.read_text()[-3000:]


async def test_a_huge_post_without_a_key_is_refused_before_its_body(served: Served) -> None:
    raw = await Raw.open(served.port, "127.0.0.41")
    try:
        # 300 MB announced, not one byte of it sent: the answer comes anyway
        await raw.send(request_head("POST", "/api/v1/messages", {"Content-Type": "application/json",
                                                                  "Content-Length": str(300 * 1024 * 1024)}))
        answer = await raw.answer(timeout=5)
        assert answer.status == 401
        assert answer.header("connection") == "close"
        assert b"an API key is required" in answer.body
        assert await raw.closed(timeout=5) == b""  # and the upload is not waited for
    finally:
        raw.close()
    raw = await Raw.open(served.port, "127.0.0.41")
    try:  # a wrong key: the same, before the body
        await raw.send(request_head("POST", "/api/v1/flows", {"Authorization": "Bearer not-the-key-not-the-key",
                                                               "Content-Length": "50000000"}))
        answer = await raw.answer(timeout=5)
        assert answer.status == 401 and b"not valid" in answer.body
    finally:
        raw.close()
    # a client that sends its whole body before it reads (httpx) still gets the answer: the server drops the
    # rest of the upload instead of resetting the connection under it
    async with client(served.url, "127.0.0.41") as c:
        r = await c.post("/api/v1/messages", content=b"x" * (8 * 1024 * 1024), headers={"Content-Type": "text/plain"})
        assert r.status_code == 401


async def test_malformed_json_without_a_key_is_401_not_422(served: Served) -> None:
    async with client(served.url, "127.0.0.42") as c:
        r = await c.post("/api/v1/messages", content=b'{"to": "346', headers={"Content-Type": "application/json"})
        assert r.status_code == 401
        assert r.headers["www-authenticate"] == "Bearer"
        assert r.json()["error"] == "unauthorized"
        r = await c.post("/api/v1/messages", content=b'{"to": "346',
                         headers={**AUTH, "Content-Type": "application/json"})
        assert r.status_code == 422  # with the key, the body is read and judged


async def test_a_webhook_without_a_signature_is_refused_before_its_body(served: Served) -> None:
    raw = await Raw.open(served.port, "127.0.0.43")
    try:
        await raw.send(request_head("POST", "/webhook", {"Content-Type": "application/json",
                                                         "Content-Length": "2000000"}))
        answer = await raw.answer(timeout=5)
        assert answer.status == 401 and b"X-Hub-Signature-256 is missing" in answer.body
    finally:
        raw.close()
    async with client(served.url, "127.0.0.43") as c:  # a signed one is still read, checked, stored
        _, body = message_body(served.emu)
        r = await c.post("/webhook", content=body, headers=signed(served.emu, body))
        assert r.status_code == 200


async def test_api_bodies_are_bounded_while_they_stream(served: Served) -> None:
    # declared too large: refused before a byte is read
    raw = await Raw.open(served.port, "127.0.0.44")
    try:
        await raw.send(request_head("POST", "/api/v1/messages", {**AUTH, "Content-Type": "application/json",
                                                                  "Content-Length": "1000001"}))
        answer = await raw.answer(timeout=5)
        assert answer.status == 413 and answer.header("connection") == "close"
    finally:
        raw.close()
    # chunked, no length: refused at the chunk that crosses the limit, the rest never sent
    for path in ("/api/v1/messages", "/api/v1/flows"):
        raw = await Raw.open(served.port, "127.0.0.44")
        try:
            await raw.send(request_head("POST", path, {**AUTH, "Content-Type": "application/yaml",
                                                       "Transfer-Encoding": "chunked"}))
            chunk = b"x" * 65536
            for _ in range(16):  # 1,048,576 bytes > 1,000,000, and no terminating chunk
                await raw.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            answer = await raw.answer(timeout=5)
            assert answer.status == 413, path
            assert b"exceeds 1000000 bytes" in answer.body
        finally:
            raw.close()
    # a flow upload's 1 MB cap, declared: at once
    raw = await Raw.open(served.port, "127.0.0.44")
    try:
        await raw.send(request_head("POST", "/api/v1/flows", {**AUTH, "Content-Type": "application/yaml",
                                                               "Content-Length": "1500000"}))
        assert (await raw.answer(timeout=5)).status == 413
    finally:
        raw.close()


async def test_a_webhook_body_over_its_limit_is_refused_while_streaming(served: Served) -> None:
    raw = await Raw.open(served.port, "127.0.0.45")
    try:
        _, body = message_body(served.emu)
        headers = {**signed(served.emu, body), "Transfer-Encoding": "chunked"}
        await raw.send(request_head("POST", "/webhook", headers))
        chunk = b" " * 65536
        for _ in range(49):  # 3.06 MB > 3 MiB, unterminated
            await raw.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        answer = await raw.answer(timeout=5)
        assert answer.status == 413
        assert answer.header("connection") == "close"
    finally:
        raw.close()


async def test_half_sent_headers_and_silent_connections_are_closed(served: Served) -> None:
    raw = await Raw.open(served.port, "127.0.0.46")
    started = time.monotonic()
    try:
        await raw.send(b"POST /webhook HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Ty")
        data = await raw.closed(timeout=10)
        assert data.startswith(b"HTTP/1.1 408")
        assert time.monotonic() - started >= HEADER_S * 0.9
    finally:
        raw.close()
    silent = await Raw.open(served.port, "127.0.0.46")
    try:
        assert await silent.closed(timeout=10) == b""  # connected, said nothing: closed
    finally:
        silent.close()
    # a kept-alive connection that starts its next request and stops
    raw = await Raw.open(served.port, "127.0.0.46")
    try:
        await raw.send(request_head("GET", "/healthz"))
        assert (await raw.answer()).status == 200
        await raw.send(b"GET /heal")
        assert (await raw.closed(timeout=10)).startswith(b"HTTP/1.1 408")
    finally:
        raw.close()


async def test_endless_headers_are_refused(served: Served) -> None:
    raw = await Raw.open(served.port, "127.0.0.47")
    try:
        await raw.send(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        for i in range(20):  # 20 KB of headers, never ending, against 8 KB allowed
            await raw.send(f"X-Filler-{i}: {'a' * 1000}\r\n".encode())
        data = await raw.closed(timeout=5)
        assert data.startswith(b"HTTP/1.1 431")
    finally:
        raw.close()


async def test_half_sent_bodies_get_a_deadline(served: Served) -> None:
    fake_signature = {"Content-Type": "application/json", "X-Hub-Signature-256": "sha256=" + "0" * 64}
    for path, headers in (("/api/v1/messages", {**AUTH, "Content-Type": "application/json"}),
                          ("/webhook", fake_signature)):
        raw = await Raw.open(served.port, "127.0.0.48")
        try:
            await raw.send(request_head("POST", path, {**headers, "Content-Length": "100"}) + b'{"to": "34')
            answer = await raw.answer(timeout=10)
            assert answer.status == 408, path
            assert answer.header("connection") == "close"
        finally:
            raw.close()


async def test_connections_per_address_are_limited(served: Served) -> None:
    held = [await Raw.open(served.port, "127.0.0.49") for _ in range(3)]
    try:
        for raw in held:  # each accepted and answering
            await raw.send(request_head("GET", "/healthz"))
            assert (await raw.answer()).status == 200
        extra = await Raw.open(served.port, "127.0.0.49")
        try:
            await extra.send(request_head("GET", "/healthz"))
            assert await extra.closed(timeout=5) == b""  # never read, closed (after a short hold)
        finally:
            extra.close()
        elsewhere = await Raw.open(served.port, "127.0.0.50")  # another address is not affected
        try:
            await elsewhere.send(request_head("GET", "/healthz"))
            assert (await elsewhere.answer()).status == 200
        finally:
            elsewhere.close()
    finally:
        for raw in held:
            raw.close()


async def test_an_address_over_its_failure_budget_is_read_in_the_slow_lane(served: Served) -> None:
    """Its new connections wait their turn (8/s here) — and a signed webhook among them is still stored."""
    source = "127.0.0.51"
    async with client(served.url, source) as c:
        _, body = message_body(served.emu)
        assert [(await c.post("/webhook", content=body)).status_code for _ in range(4)] == [401, 401, 401, 429]

    async def signed_on_a_new_connection() -> tuple[int | None, float]:
        raw = await Raw.open(served.port, source)
        try:
            _, body = message_body(served.emu)
            await raw.send(request_head("POST", "/webhook", {**signed(served.emu, body),
                                                             "Content-Length": str(len(body))}) + body)
            answer = await raw.answer(timeout=10)
            return answer.status, time.monotonic()
        finally:
            raw.close()

    started = time.monotonic()
    results = await asyncio.gather(*(signed_on_a_new_connection() for _ in range(3)))
    assert [status for status, _ in results] == [200, 200, 200]
    # one each 1/8 s
    assert max(t for _, t in results) - started >= 2 / LANE_PER_S * 0.8
    async with client(served.url, "127.0.0.52") as c:  # another address does not wait in it
        _, body = message_body(served.emu)
        t0 = time.monotonic()
        assert (await c.post("/webhook", content=body, headers=signed(served.emu, body))).status_code == 200
        assert time.monotonic() - t0 < 2 / LANE_PER_S
