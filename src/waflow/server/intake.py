"""The bounded intake: a pure ASGI layer in front of `waflow serve`'s app that refuses what it can before any
body is read or parsed.

For every HTTP request, in order (each refusal is cheap; nothing below it runs):

1. **Who and how** (`waflow.server.proxies`): the client address and scheme, from `X-Forwarded-For` /
   `X-Forwarded-Proto` only when the TCP peer is one of `[server] trusted_proxies`; the scope's `client` and
   `scheme` are rewritten to them.
2. **HTTPS** (`require_https`): a request that did not arrive over TLS (here, or at a trusted proxy that says
   `X-Forwarded-Proto: https`) is answered **403** `https_required`; with it every answer carries
   `Strict-Transport-Security`.
3. **Credentials before the body**: `/api/*` needs `Authorization: Bearer <key>` matching `api.keys` (constant
   time, `waflow.api.auth.matching_key`), else **401** — a 300 MB POST without a key, or malformed JSON, is
   answered 401 without its body being read; `POST <webhook_path>` needs an `X-Hub-Signature-256` header, else
   **401** (the signature itself is checked by the webhook receiver, over the raw bytes).
4. **Failures cost the client address** (`auth_failures_per_s` / `_burst`): every 401 / 403 — from step 2 or 3,
   or answered by the app (a bad signature, a wrong `/metrics` key, a refused handshake) — takes a token from
   the client address's bucket; an address out of tokens gets **429** + `Retry-After` instead, with
   `Connection: close`. A validly signed webhook never takes a token and is never answered 429 for its
   address's failures (an over-budget address's new connections wait in the slow lane of
   `waflow.server.protocol`, where a signed webhook is still read, stored and answered 200).
5. **Per API key** (`api_requests_per_s` / `api_burst`): **429** + `Retry-After`.
6. **Global ceiling** (`intake_requests_per_s` / `intake_burst`) over the requests that passed 3: **503** +
   `Retry-After` (Meta retries a webhook answered 503).
7. **Body, bounded while streaming**: the admin API (and every path but the webhook) reads at most
   `api_max_body_bytes` (a flow upload at most `MAX_FLOW_BYTES`) — a declared `Content-Length` over it is
   refused before a byte is read, a chunked body at the chunk that crosses it (**413**) — and the body must
   arrive within `body_timeout_s` (**408**); the body read here is handed to the app in one message. The
   webhook's body is read by the receiver itself under its own limit (`WebhookConfig.max_body_bytes`, 413),
   with the same deadline (408) enforced on every `receive()` here.

An answer given while the request's body is unread carries `Connection: close` (the guarded protocol then
drops the rest of the upload unparsed for a bounded while, so a client that reads only after sending still gets
the answer: its "lingering close"). Counted in `waflow_intake_refused_total{reason}`; logged at most once a
second, without keys, signatures or bodies.
The buckets are per process (`waflow.server.ratelimit`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

import orjson
from prometheus_client import Counter
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from waflow.api.auth import bearer_credentials, matching_key
from waflow.api.routes.flows import MAX_FLOW_BYTES
from waflow.config import Settings
from waflow.server.proxies import TrustedProxies
from waflow.server.ratelimit import BucketTable, Clock, GlobalBucket, Pacer, address_key, retry_after
from waflow.webhooks import metrics as webhook_metrics

log = logging.getLogger("waflow.server.intake")

REFUSED = Counter(
    "waflow_intake_refused",
    "Requests and connections refused by the intake before the app: https_required, no_key, bad_key, "
    "missing_signature, address_rate (429: the client address is over its failure budget), key_rate (429: the API "
    "key is over its rate), overloaded (503: the global ceiling), too_large (413), body_timeout (408), "
    "header_timeout, header_too_large (431), connections (over max_connections), connections_per_address.",
    ["reason"],
)
HSTS = (b"strict-transport-security", b"max-age=31536000")
CLOSE = (b"connection", b"close")
_LOG_EVERY_S = 1.0


@dataclass(frozen=True)
class IntakeLimits:
    """What the intake and the guarded protocol enforce (from `[server]`; see `ServerSettings` for each)."""

    webhook_path: str = "/webhook"
    key_hashes: tuple[str, ...] = ()
    trusted_proxies: tuple[str, ...] = ()
    require_https: bool = False
    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    max_header_bytes: int = 32768
    api_max_body_bytes: int = 1_000_000
    flow_max_body_bytes: int = MAX_FLOW_BYTES
    max_connections: int = 1000
    max_connections_per_address: int = 100
    auth_failures_per_s: float = 2.0
    auth_failures_burst: int = 10
    api_requests_per_s: float = 100.0
    api_burst: int = 200
    intake_requests_per_s: float = 5000.0
    intake_burst: int = 10000
    penalized_connections_per_s: float = 10.0

    @classmethod
    def from_settings(cls, settings: Settings) -> IntakeLimits:
        s = settings.server
        return cls(
            webhook_path=s.webhook_path,
            key_hashes=tuple(k.get_secret_value() for k in settings.api.keys),
            trusted_proxies=tuple(s.trusted_proxies),
            require_https=s.require_https,
            header_timeout_s=s.header_timeout_s,
            body_timeout_s=s.body_timeout_s,
            max_header_bytes=s.max_header_bytes,
            api_max_body_bytes=s.api_max_body_bytes,
            flow_max_body_bytes=min(MAX_FLOW_BYTES, s.api_max_body_bytes),
            max_connections=s.max_connections,
            max_connections_per_address=s.max_connections_per_address,
            auth_failures_per_s=s.auth_failures_per_s,
            auth_failures_burst=s.auth_failures_burst,
            api_requests_per_s=s.api_requests_per_s,
            api_burst=s.api_burst,
            intake_requests_per_s=s.intake_requests_per_s,
            intake_burst=s.intake_burst,
            penalized_connections_per_s=s.penalized_connections_per_s,
        )

    def __repr__(self) -> str:  # the key hashes stay out of reprs
        return (f"IntakeLimits(webhook_path={self.webhook_path!r}, keys={len(self.key_hashes)}, "
                f"trusted_proxies={list(self.trusted_proxies)}, require_https={self.require_https})")


class Guard:
    """The state the intake and the connections share in one process: the buckets, the connection counts, the
    slow lane. `clock` (monotonic seconds) drives every bucket: tests pass one they move by hand."""

    def __init__(self, limits: IntakeLimits, *, clock: Clock = time.monotonic) -> None:
        self.limits = limits
        self.trusted = TrustedProxies(limits.trusted_proxies)
        self.failures = BucketTable(limits.auth_failures_per_s, limits.auth_failures_burst, clock=clock)
        self.keys = BucketTable(limits.api_requests_per_s, limits.api_burst, clock=clock)
        self.ceiling = GlobalBucket(limits.intake_requests_per_s, limits.intake_burst, clock=clock)
        self.connections_by_address: dict[str, int] = {}
        self.tarpitted = 0  # connections over their address's limit, held unread until closed
        self.lane = Pacer(limits.penalized_connections_per_s)
        self._log = _RefusalLog()

    def __repr__(self) -> str:
        return f"Guard({self.limits!r})"

    def penalized(self, peer: str | None) -> bool:
        """Whether connections from this TCP peer go to the slow lane: it is over its failure budget (a trusted
        proxy never is: its connections carry many clients)."""
        if not peer or self.trusted.trusts(peer):
            return False
        return self.failures.empty(address_key(peer))

    def refused(self, reason: str, client: str) -> None:
        _COUNTERS[reason].inc()
        self._log.note(reason, client)

    def close(self) -> None:
        self.lane.close()


_REASONS = ("https_required", "no_key", "bad_key", "missing_signature", "address_rate", "key_rate", "overloaded",
            "too_large", "body_timeout", "header_timeout", "header_too_large", "connections",
            "connections_per_address")
_COUNTERS = {reason: REFUSED.labels(reason=reason) for reason in _REASONS}


class _RefusalLog:
    """One warning a second at most under a flood, with what was refused since the last one."""

    def __init__(self) -> None:
        self._at = -_LOG_EVERY_S
        self._counts: dict[str, int] = {}

    def note(self, reason: str, client: str) -> None:
        self._counts[reason] = self._counts.get(reason, 0) + 1
        now = time.monotonic()
        if now - self._at >= _LOG_EVERY_S:
            shown = ", ".join(f"{r} {n}" for r, n in sorted(self._counts.items()))
            log.warning("intake refused: %s (latest from %s)", shown, client or "?")
            self._at, self._counts = now, {}


class BodyTimeoutError(Exception):
    """The request body did not arrive within `body_timeout_s`."""


class _DeadlineReceive:
    """`receive` with the body deadline on every call until the body is complete."""

    __slots__ = ("deadline", "done", "receive")

    def __init__(self, receive: Receive, deadline: float) -> None:
        self.receive = receive
        self.deadline = deadline
        self.done = False

    async def __call__(self) -> Message:
        if self.done:
            return await self.receive()
        try:
            async with asyncio.timeout_at(self.deadline):
                message = await self.receive()
        except TimeoutError:
            raise BodyTimeoutError from None
        if message["type"] != "http.request" or not message.get("more_body", False):
            self.done = True
        return message


class _Replay:
    """The body the intake read, as one message; then the real `receive` (a disconnect, for streaming answers)."""

    __slots__ = ("body", "receive", "sent")

    def __init__(self, body: bytes, receive: Receive) -> None:
        self.body = body
        self.receive = receive
        self.sent = False

    async def __call__(self) -> Message:
        if not self.sent:
            self.sent = True
            return {"type": "http.request", "body": self.body, "more_body": False}
        return await self.receive()


class _Responder:
    """The app's `send`, watched: a 401 / 403 costs the client a token and becomes a 429 when it has none; adds
    `Connection: close` (unread body, or a peer in the slow lane) and HSTS."""

    __slots__ = ("body", "client", "guard", "hsts", "json", "peer", "send", "started", "swallow")

    def __init__(self, guard: Guard, send: Send, *, client: str, peer: str, json: bool, hsts: bool,
                 body: _DeadlineReceive | None) -> None:
        self.guard = guard
        self.send = send
        self.client = client
        self.peer = peer
        self.json = json
        self.hsts = hsts
        self.body = body
        self.started = False
        self.swallow = False

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.started = True
            status = message["status"]
            if status in (401, 403):
                wait = self.guard.failures.take(address_key(self.client))
                if wait:
                    self.swallow = True
                    self.guard.refused("address_rate", self.client)
                    await _answer(self.send, *_address_limited(wait, self.json), close=True, hsts=self.hsts)
                    return
            extra: list[tuple[bytes, bytes]] = []
            if (self.body is not None and not self.body.done) or self.guard.penalized(self.peer):
                extra.append(CLOSE)
            if self.hsts:
                extra.append(HSTS)
            if extra:
                message = {**message, "headers": [*message.get("headers", ()), *extra]}
            await self.send(message)
        elif not self.swallow:
            await self.send(message)


class Intake:
    """The ASGI layer (see the module doc) around `app` (`ServeApp`); `guard` holds its state."""

    def __init__(self, app: ASGIApp, guard: Guard) -> None:
        self.app = app
        self.guard = guard
        self.limits = guard.limits

    def __repr__(self) -> str:
        return f"Intake({self.limits!r})"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limits = self.limits
        guard = self.guard
        peer_addr = scope.get("client")
        peer: str = peer_addr[0] if peer_addr else ""
        auth = signature = length = encoding = None
        forwarded_for: list[bytes] = []
        forwarded_proto: list[bytes] = []
        for name, value in scope["headers"]:
            if name == b"authorization":
                auth = value
            elif name == b"x-hub-signature-256":
                signature = value
            elif name == b"content-length":
                length = value
            elif name == b"transfer-encoding":
                encoding = value
            elif name == b"x-forwarded-for":
                forwarded_for.append(value)
            elif name == b"x-forwarded-proto":
                forwarded_proto.append(value)
        scheme: str = scope.get("scheme", "http")
        client = peer
        if forwarded_for or forwarded_proto:
            client, scheme = guard.trusted.resolve(peer, scheme, forwarded_for, forwarded_proto)
            if client != peer or scheme != scope.get("scheme"):
                scope = {**scope, "client": (client, 0), "scheme": scheme}
        has_body = encoding is not None or (length is not None and length.strip() not in (b"", b"0"))
        path: str = scope["path"]
        method: str = scope["method"]
        is_webhook = method == "POST" and path == limits.webhook_path
        is_api = path != limits.webhook_path and (path.startswith("/api/") or path == "/api")
        json = not is_webhook
        hsts = limits.require_https

        if limits.require_https and scheme != "https":
            await self._fail(send, client, peer, "https_required", 403, "https_required",
                             "HTTPS required: send this request over TLS (directly, or through a trusted proxy that "
                             "sets X-Forwarded-Proto: https)", json=json, has_body=has_body, hsts=False)
            return
        if is_api:
            presented = bearer_credentials(auth.decode("latin-1")) if auth is not None else None
            matched = matching_key(presented, limits.key_hashes) if presented is not None else None
            if matched is None:
                reason, text = ("no_key", "an API key is required: Authorization: Bearer <key>") if presented is None \
                    else ("bad_key", "the API key is not valid")
                await self._fail(send, client, peer, reason, 401, "unauthorized", text, json=True, has_body=has_body,
                                 hsts=hsts)
                return
            wait = guard.keys.take(matched)
            if wait:
                guard.refused("key_rate", client)
                await _answer(send, 429, _json("rate_limited", f"this API key is over its rate limit "
                              f"({limits.api_requests_per_s:g} requests/s): retry after {retry_after(wait)} s"),
                              True, retry_after(wait), close=has_body, hsts=hsts)
                return
        elif is_webhook and (signature is None or not signature.strip()):
            webhook_metrics.RECEIVED.labels(result="missing_signature").inc()
            await self._fail(send, client, peer, "missing_signature", 401, "",
                             "Unauthorized: X-Hub-Signature-256 is missing", json=False, has_body=has_body, hsts=hsts)
            return
        wait = guard.ceiling.take()
        if wait:
            guard.refused("overloaded", client)
            text = "Service Unavailable: the server is at its intake ceiling; retry"
            await _answer(send, 503, _json("overloaded", text) if json else text.encode(), json, retry_after(wait),
                          close=has_body, hsts=hsts)
            return

        loop = asyncio.get_running_loop()
        deadline = loop.time() + limits.body_timeout_s
        if is_webhook:
            body_receive = _DeadlineReceive(receive, deadline)
            responder = _Responder(guard, send, client=client, peer=peer, json=False, hsts=hsts, body=body_receive)
            try:
                await self.app(scope, body_receive, responder)
            except BodyTimeoutError:
                await self._body_timeout(responder, send, client, json=False, hsts=hsts)
            return
        if has_body:
            limit = limits.flow_max_body_bytes if method == "POST" and path == "/api/v1/flows" \
                else limits.api_max_body_bytes
            try:
                body = await _read_body(receive, length, limit, deadline)
            except _TooLargeError:
                guard.refused("too_large", client)
                await _answer(send, 413, _json("too_large", f"the request body exceeds {limit} bytes"), True,
                              close=True, hsts=hsts)
                return
            except BodyTimeoutError:
                guard.refused("body_timeout", client)
                await _answer(send, 408, _json("body_timeout", f"the request body did not arrive within "
                              f"{limits.body_timeout_s:g} s"), True, close=True, hsts=hsts)
                return
            if body is None:
                return  # the client went away
            receive = _Replay(body, receive)
        await self.app(scope, receive, _Responder(guard, send, client=client, peer=peer, json=True, hsts=hsts,
                                                  body=None))

    async def _fail(self, send: Send, client: str, peer: str, reason: str, status: int, slug: str, text: str, *,
                    json: bool, has_body: bool, hsts: bool) -> None:
        """A refusal known before the body: it costs the client a token; without one it becomes a 429."""
        wait = self.guard.failures.take(address_key(client))
        if wait:
            self.guard.refused("address_rate", client)
            await _answer(send, *_address_limited(wait, json), close=True, hsts=hsts)
            return
        self.guard.refused(reason, client)
        body = _json(slug, text) if json else text.encode()
        extra = [(b"www-authenticate", b"Bearer")] if status == 401 and json else []
        await _answer(send, status, body, json, close=has_body or self.guard.penalized(peer), hsts=hsts,
                      extra=extra)

    async def _body_timeout(self, responder: _Responder, send: Send, client: str, *, json: bool, hsts: bool) -> None:
        self.guard.refused("body_timeout", client)
        if responder.started:
            return
        text = f"Request Timeout: the body did not arrive within {self.limits.body_timeout_s:g} s"
        await _answer(send, 408, _json("body_timeout", text) if json else text.encode(), json, close=True, hsts=hsts)


class _TooLargeError(Exception):
    pass


async def _read_body(receive: Receive, length: bytes | None, limit: int, deadline: float) -> bytes | None:
    """The whole body (None: the client disconnected); `_TooLargeError` before reading past `limit`,
    `BodyTimeoutError` past `deadline` (loop time)."""
    if length is not None:
        try:
            if int(length) > limit:
                raise _TooLargeError
        except ValueError:
            pass  # the HTTP parser refuses a malformed length; count the bytes anyway
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout_at(deadline):
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return None
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > limit:
                    raise _TooLargeError
                if chunk:
                    chunks.append(chunk)
                if not message.get("more_body", False):
                    break
    except TimeoutError:
        raise BodyTimeoutError from None
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _json(slug: str, text: str) -> bytes:
    return orjson.dumps({"error": slug, "message": text})


def _address_limited(wait: float, json: bool) -> tuple[int, bytes, bool, int]:
    seconds = retry_after(wait)
    text = f"too many refused requests from this address: retry after {seconds} s"
    return 429, (_json("rate_limited", text) if json else f"Too Many Requests: {text}".encode()), json, seconds


async def _answer(send: Send, status: int, body: bytes, json: bool, retry: int | None = None, *, close: bool,
                  hsts: bool, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    headers: list[Any] = [
        (b"content-type", b"application/json" if json else b"text/plain; charset=utf-8"),
        (b"content-length", b"%d" % len(body)),
    ]
    if retry is not None:
        headers.append((b"retry-after", b"%d" % retry))
    if close:
        headers.append(CLOSE)
    if hsts:
        headers.append(HSTS)
    if extra:
        headers += extra
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
