"""The HTTP endpoint Meta calls: GET handshake, POST signed webhooks → inbox → 200.

`WebhookReceiver` holds the configuration, the signature verifier and the group-commit
`InboxWriter`; its `routes` mount into any Starlette/FastAPI app (the writer starts on the first
request, and `start()` / `stop()` or `lifespan` manage it explicitly). `create_webhook_app`
builds a standalone Starlette app around one receiver.

POST, in order: size limit (413, body not read past the limit) → signature over the raw bytes
(missing 401, malformed/wrong 403; counted and logged without the body or any secret; never
processed) → parse (a body that does not parse is stored raw as a dead letter and answered 200)
→ every number in the body must belong to the app whose secret signed it (403) → events of numbers
not configured here are dropped, counted and logged (`scope`) → the events are written to the inbox in a
group commit → 200 only once that commit is durable. The 200 never waits for flow work or sending.

Overload: when the events waiting for their commit would pass `max_uncommitted_events`, or the
writer predicts the POST would wait longer than `max_commit_wait_s` for its commit (checked again
before the body is parsed, so a shed POST costs only its signature check), the POST
is answered 503 with `Retry-After` at once, before anything of it is queued (so nothing of it is
stored, and the next delivery is a fresh one), and counted as
`webhooks_received_total{result="overloaded"}`. Meta retries non-200 answers; answers stay fast
while the database is behind instead of every request waiting in an unbounded queue.

A batched body with some malformed updates is not refused as a whole: its valid events go to the
inbox and each rejected fragment (message, status, change, entry) becomes its own dead letter,
with its place and reason, in the same commit. `webhooks_received_total{result="dead_letter"}`
counts every rejected fragment (a whole body counts one); such a POST also counts as `ok`.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from waflow.canonical import EventKind, StatusUpdate
from waflow.faults import fault_point
from waflow.providers.cloud import ParsedWebhook, WebhookParseError, parse_webhook
from waflow.store import Store
from waflow.store.bulk import in_one_hop
from waflow.store.types import utcnow
from waflow.webhooks import metrics
from waflow.webhooks.body import BodyTooLargeError, read_limited
from waflow.webhooks.config import WebhookConfig
from waflow.webhooks.persist import (
    DeadLetterRequest,
    InboxRequest,
    PartialRequest,
    WriteOutcome,
    WriteRequest,
    write_requests,
)
from waflow.webhooks.scope import NumberScope
from waflow.webhooks.signature import (
    SIGNATURE_HEADER,
    SignatureOutcome,
    SignatureVerifier,
    verify_token_matches,
)
from waflow.webhooks.status import StatusProcessor
from waflow.webhooks.writer import InboxWriter, WriterOverloadedError

log = logging.getLogger("waflow.webhooks")

_KEPT_HEADERS = ("content-type", "content-length", "user-agent", SIGNATURE_HEADER, "x-hub-signature")
_OK = b"ok"
# Seconds a shed POST is told to wait (`Retry-After`): about one commit backlog at the default bound.
RETRY_AFTER_S = 1
_SHED_LOG_EVERY_S = 1.0
_OVERLOADED = b"Service Unavailable: too many webhooks waiting to be stored; retry"


def _text(body: str, status: int) -> Response:
    return PlainTextResponse(body, status_code=status)


class WebhookReceiver:
    """The webhook endpoint's logic; mount `routes` or use `create_webhook_app`."""

    def __init__(self, config: WebhookConfig, store: Store, *, path: str = "/") -> None:
        self.config = config
        self.store = store
        self.path = path
        self.verifier = SignatureVerifier(config)
        self.scope = NumberScope(config)
        self.writer = InboxWriter(
            self._commit,
            max_events=config.batch_max_events,
            linger_s=config.batch_linger_s,
            max_uncommitted_events=config.max_uncommitted_events,
            max_commit_wait_s=config.max_commit_wait_s,
        )
        inline = config.apply_statuses_inline
        self.apply_statuses_inline = store.dialect == "sqlite" if inline is None else inline
        self.status_processor = StatusProcessor(store) if config.status_processor else None
        # called once a webhook's events are durable (before its 200), with what was stored: the process
        # hosting the receiver wakes the parts that consume them (`waflow serve`: the engine, on new messages)
        self.on_stored: Callable[[WriteOutcome], None] | None = None
        self._shed_logged_at = -_SHED_LOG_EVERY_S
        self._shed_unlogged = 0

    def __repr__(self) -> str:
        return f"WebhookReceiver(numbers={sorted(self.config.numbers)}, store={self.store!r})"

    @property
    def routes(self) -> list[Route]:
        return [
            Route(self.path, self.handshake, methods=["GET"]),
            Route(self.path, self.receive, methods=["POST"]),
        ]

    async def start(self) -> None:
        self.writer.start()
        if self.status_processor is not None:
            self.status_processor.start()

    async def stop(self) -> None:
        await self.writer.stop()
        if self.status_processor is not None:
            await self.status_processor.stop()

    @contextlib.asynccontextmanager
    async def lifespan(self, _app: Any = None) -> AsyncIterator[None]:
        await self.start()
        try:
            yield
        finally:
            await self.stop()

    async def _commit(self, requests: Sequence[WriteRequest]) -> list[WriteOutcome]:
        try:
            outcomes = await self._write(requests, apply_statuses=self.apply_statuses_inline)
        except Exception as exc:
            if not self.apply_statuses_inline:
                raise
            # Storing the events must not depend on applying them: keep them pending for the processor.
            log.error("applying statuses in the inbox commit failed (%s); storing them pending", type(exc).__name__)
            outcomes = await self._write(requests, apply_statuses=False)
        if self.status_processor is not None:
            # committed: hand the pending statuses over in commit order (no read-back, no re-parse)
            for outcome in outcomes:
                self.status_processor.offer(outcome.statuses)
        return outcomes

    async def _write(self, requests: Sequence[WriteRequest], *, apply_statuses: bool) -> list[WriteOutcome]:
        async with self.store.begin() as conn:
            outcomes = await in_one_hop(
                conn, lambda: write_requests(self.store, conn, requests, apply_statuses=apply_statuses)
            )
        if apply_statuses and any(new and kind == EventKind.STATUS for o in outcomes for kind, new in o.by_kind):
            fault_point("statuses.applied")  # committed with the statuses applied in the same transaction
        return outcomes

    # -- GET: verification handshake ------------------------------------------------------

    async def handshake(self, request: Request) -> Response:
        q = request.query_params
        if q.get("hub.mode") != "subscribe" or not verify_token_matches(self.config, q.get("hub.verify_token")):
            metrics.HANDSHAKES.labels(result="refused").inc()
            log.warning("webhook handshake refused (mode=%r, from %s)", q.get("hub.mode"), _peer(request))
            return _text("Forbidden", 403)
        challenge = q.get("hub.challenge")
        if challenge is None:
            metrics.HANDSHAKES.labels(result="no_challenge").inc()
            return _text("hub.challenge is missing", 400)
        metrics.HANDSHAKES.labels(result="ok").inc()
        return _text(challenge, 200)

    # -- POST: a signed webhook -------------------------------------------------------------

    async def receive(self, request: Request) -> Response:
        """The Starlette route (for mounting in a FastAPI/Starlette app)."""
        try:
            raw: bytes | None = await read_limited(request, self.config.max_body_bytes)
        except BodyTooLargeError:
            raw = None
        status, text = await self.handle(
            raw,
            request.headers.get(SIGNATURE_HEADER),
            lambda: {k: request.headers[k] for k in _KEPT_HEADERS if k in request.headers},
            lambda: _peer(request),
        )
        return Response(text, status, headers=_extra_headers(status), media_type="text/plain")

    async def asgi_post(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The same POST as raw ASGI: what `create_webhook_app` serves. Starlette's request,
        routing and exception-middleware layers cost ~40% of the endpoint's CPU per request in
        the ingest profile (single-status POSTs), for nothing this endpoint uses."""
        headers = Headers(raw=scope["headers"])
        raw = await _read_asgi_body(headers, receive, self.config.max_body_bytes)
        client = scope.get("client")
        status, text = await self.handle(
            raw,
            headers.get(SIGNATURE_HEADER),
            lambda: {k: headers[k] for k in _KEPT_HEADERS if k in headers},
            lambda: f"{client[0]}:{client[1]}" if client else "?",
        )
        response_headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"%d" % len(text))]
        if status == 503:
            response_headers.append((b"retry-after", b"%d" % RETRY_AFTER_S))
        await send({"type": "http.response.start", "status": status, "headers": response_headers})
        await send({"type": "http.response.body", "body": text})

    async def handle(
        self,
        raw: bytes | None,
        signature_header: str | None,
        kept_headers: Callable[[], dict[str, str]],
        peer: Callable[[], str],
    ) -> tuple[int, bytes]:
        """One POST: `raw` is the body (None: over the size limit); (HTTP status, body) to answer."""
        if raw is None:
            declared = kept_headers().get("content-length")
            return self._refuse(
                peer,
                "too_large",
                413,
                "Payload Too Large",
                size=int(declared) if declared and declared.isdigit() else None,
            )
        check = self.verifier.check(raw, signature_header)
        if check.outcome is not SignatureOutcome.OK or check.app is None:
            status = 401 if check.outcome is SignatureOutcome.MISSING else 403
            return self._refuse(
                peer, check.outcome.value, status, "Unauthorized" if status == 401 else "Forbidden", size=len(raw)
            )
        try:  # shed before parsing when the writer is already behind (the parse is most of a POST's CPU)
            self.writer.check_admission(0)
        except WriterOverloadedError as exc:
            return self._shed(exc, peer)
        received_at = utcnow()
        try:
            parsed = parse_webhook(raw)
        except WebhookParseError as exc:
            return await self._dead_letter(raw, str(exc), received_at, kept_headers(), peer)
        if not self.verifier.app_serves(check.app, parsed.phone_number_ids, parsed.waba_ids):
            return self._refuse(peer, "wrong_app", 403, "Forbidden", size=len(raw))
        parsed = self.scope.keep(parsed)  # events of numbers not configured here are never filed
        request: WriteRequest = (
            self._partial(parsed, received_at, kept_headers()) if parsed.rejected else InboxRequest(parsed, received_at)
        )
        if _redelivered(parsed, received_at):
            self.writer.fell_behind()  # Meta is catching up on webhooks it could not deliver: more may follow
        try:
            outcome = await self.writer.write(request)
        except WriterOverloadedError as exc:
            return self._shed(exc, peer)
        except Exception as exc:
            metrics.RECEIVED.labels(result="store_error").inc()
            log.error("webhook not stored (%s); answering 500 so Meta retries", type(exc).__name__)
            return 500, b"Internal Server Error"
        metrics.RECEIVED_OK.inc()
        if parsed.rejected:
            self._count_rejected(parsed, len(raw))
        if self.on_stored is not None:
            try:
                self.on_stored(outcome)
            except Exception:  # a wake-up hook must never turn a stored webhook into a 500 (Meta would resend)
                log.exception("on_stored hook failed")
        for (kind, is_new), count in outcome.by_kind.items():
            _events_counter(kind, is_new).inc(count)
        return 200, _OK

    @staticmethod
    def _partial(parsed: ParsedWebhook, received_at: Any, headers: dict[str, str]) -> PartialRequest:
        letters = tuple(
            DeadLetterRequest(f.body, f.problem, headers, f.phone_number_id, received_at, place=f.where)
            for f in parsed.rejected
        )
        return PartialRequest(parsed, received_at, letters)

    @staticmethod
    def _count_rejected(parsed: ParsedWebhook, size: int) -> None:
        rejected = parsed.rejected
        metrics.RECEIVED.labels(result="dead_letter").inc(len(rejected))
        shown = "; ".join(f.problem[:200] for f in rejected[:3])
        more = f" (and {len(rejected) - 3} more)" if len(rejected) > 3 else ""
        log.warning(
            "webhook (%d bytes): %d update(s) did not parse, kept as dead letters, %d event(s) stored: %s%s",
            size,
            len(rejected),
            len(parsed.events),
            shown,
            more,
        )

    async def _dead_letter(
        self, raw: bytes, reason: str, received_at: Any, headers: dict[str, str], peer: Callable[[], str]
    ) -> tuple[int, bytes]:
        pnid = self.verifier.hinted_phone_number_id(raw)
        try:
            await self.writer.write(DeadLetterRequest(raw, reason, headers, pnid, received_at))
        except WriterOverloadedError as exc:
            return self._shed(exc, peer)
        except Exception as exc:
            metrics.RECEIVED.labels(result="store_error").inc()
            log.error("dead letter not stored (%s); answering 500 so Meta retries", type(exc).__name__)
            return 500, b"Internal Server Error"
        metrics.RECEIVED.labels(result="dead_letter").inc()
        log.warning("webhook body did not parse, kept as a dead letter (%d bytes): %s", len(raw), reason[:300])
        return 200, _OK

    def _shed(self, exc: WriterOverloadedError, peer: Callable[[], str]) -> tuple[int, bytes]:
        metrics.RECEIVED_OVERLOADED.inc()
        self._shed_unlogged += 1
        now = time.monotonic()
        if now - self._shed_logged_at >= _SHED_LOG_EVERY_S:  # one line a second at most, under a flood
            log.warning(
                "webhook shed: %s; answered 503 + Retry-After %d s (%d POST(s) shed since the last line, from %s)",
                exc, RETRY_AFTER_S, self._shed_unlogged, peer(),
            )  # fmt: skip
            self._shed_logged_at, self._shed_unlogged = now, 0
        return 503, _OVERLOADED

    def _refuse(
        self, peer: Callable[[], str], result: str, status: int, text: str, *, size: int | None = None
    ) -> tuple[int, bytes]:
        metrics.RECEIVED.labels(result=result).inc()
        shown = size if size is not None else "?"
        log.warning("webhook refused: %s (HTTP %d, %s bytes, from %s)", result, status, shown, peer())
        return status, text.encode()


_EVENT_COUNTERS: dict[tuple[str, bool], Any] = {}


def _events_counter(kind: str, is_new: bool) -> Any:
    # pre-bound children: `labels()` builds a tuple and takes a lock on every call
    counter = _EVENT_COUNTERS.get((kind, is_new))
    if counter is None:
        result = "new" if is_new else "duplicate"
        counter = _EVENT_COUNTERS[(kind, is_new)] = metrics.EVENTS.labels(kind=kind, result=result)
    return counter


async def _read_asgi_body(headers: Headers, receive: Receive, limit: int) -> bytes | None:
    """The body, or None as soon as it is known to exceed `limit` (as `read_limited`)."""
    declared = headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        if chunk:
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _extra_headers(status: int) -> dict[str, str] | None:
    return {"Retry-After": str(RETRY_AFTER_S)} if status == 503 else None


# A status reported this much earlier than it reaches us was (most likely) redelivered: Meta retried a webhook
# that found no one answering in time. Well above clock skew and Meta's usual delay of a second or two.
REDELIVERED_AFTER_S = 10.0


def _redelivered(parsed: ParsedWebhook, received_at: datetime) -> bool:
    """Whether a status in `parsed` is older than `REDELIVERED_AFTER_S` (see `InboxWriter.calm_for`)."""
    cutoff = received_at - timedelta(seconds=REDELIVERED_AFTER_S)
    return any(isinstance(ev.event, StatusUpdate) and ev.event.timestamp < cutoff for ev in parsed.events)


def _peer(request: Request) -> str:
    return f"{request.client.host}:{request.client.port}" if request.client else "?"


class WebhookApp(Starlette):
    """The standalone app: `POST <path>` goes straight to `WebhookReceiver.asgi_post`; the rest
    (GET handshake, lifespan, 404/405) is the Starlette app around the receiver's routes."""

    def __init__(self, receiver: WebhookReceiver) -> None:
        super().__init__(routes=receiver.routes, lifespan=receiver.lifespan)
        self.state.receiver = receiver
        self._receiver = receiver

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"] == self._receiver.path:
            await self._receiver.asgi_post(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def create_webhook_app(config: WebhookConfig, store: Store, *, path: str = "/webhook") -> Starlette:
    """A standalone ASGI app serving the webhook endpoint at `path` (the writer runs in its lifespan)."""
    return WebhookApp(WebhookReceiver(config, store, path=path))
