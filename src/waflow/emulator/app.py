"""The HTTP face of the emulator: Graph API routes, media downloads, and the control plane.

The Graph side is a hand-routed ASGI callable (one dict lookup per request, orjson in and out)
because it is the hot path a client load-tests; the control plane is an ordinary Starlette app.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qs

import orjson

from . import multipart
from .control import control_app
from .core import Emulator
from .faults import Decision
from .graph_errors import GraphError, param, unknown_object
from .tokens import SCOPE_MANAGEMENT, SCOPE_MESSAGING, TokenRecord

log = logging.getLogger("waflow.emulator.http")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_VERSION = re.compile(r"^v\d+\.\d+$")
_JSON = [(b"content-type", b"application/json; charset=UTF-8")]
_BAD_GATEWAY = b"<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>"


class _TooLarge(Exception):
    pass


class EmulatorApp:
    """ASGI app for one `Emulator`. Handles lifespan so any ASGI server can host it."""

    def __init__(self, emulator: Emulator) -> None:
        self.emu = emulator
        self.control = control_app(emulator)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        if path.startswith("/_emulator"):
            await self.control(scope, receive, send)
            return
        try:
            await self._graph(scope, receive, send, path)
        except GraphError as e:
            await _respond(send, e.http_status, e.body(), e.headers)
        except _TooLarge:
            err = GraphError(100, None, message="(#100) Request body is too large.", http_status=413)
            await _respond(send, 413, err.body())
        except Exception:  # bad input must never surface as a bare 500
            log.exception("emulator error on %s %s", scope.get("method"), path)
            await _respond(send, 500, GraphError(1, "An unknown error occurred.").body())

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self.emu.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.emu.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return

    # -- Graph API -------------------------------------------------------------------------
    async def _graph(self, scope: Scope, receive: Receive, send: Send, path: str) -> None:
        emu = self.emu
        cfg = emu.config
        method: str = scope["method"]
        parts = [p for p in path.split("/") if p]
        if parts and _VERSION.match(parts[0]):
            parts = parts[1:]
        query = parse_qs(scope["query_string"].decode("latin-1")) if scope["query_string"] else {}

        if parts[:1] == ["lookaside"]:
            await self._download(scope, send, query)
            return

        body = await _read_body(receive, cfg.max_upload_bytes + 65536)
        if parts in (["debug_token"], ["oauth", "access_token"]):
            decision = emu.faults.decide(False)
            if decision is not None and await self._fault(decision, receive, send):
                return
            await _respond(send, 200, self._token_endpoint(scope, parts, body, query))
            return
        record = emu.tokens.check(_token(scope, query))
        if not parts:
            raise param("Unknown path components.")

        is_messages = len(parts) == 2 and parts[1] == "messages" and method == "POST"
        decision = emu.faults.decide(is_messages)
        forced_failure: int | None = None
        if decision is not None:
            if decision.action == "error":
                if decision.latency_s:
                    await asyncio.sleep(decision.latency_s)
                err = emu.error_for_fault(decision.code)
                if err is not None:
                    raise err
                forced_failure = decision.code
            elif await self._fault(decision, receive, send):
                return

        if is_messages:
            if parts[0] != cfg.phone_number_id:
                raise unknown_object(parts[0])
            _need(record, SCOPE_MESSAGING, cfg.waba_id)
            if len(body) > cfg.max_body_bytes:
                raise _TooLarge
            try:
                payload = orjson.loads(body) if body else None
            except orjson.JSONDecodeError:
                raise param("The request body is not valid JSON.") from None
            if payload is None and (_form(scope) or query):
                payload = _form_payload(body, query)
            await _respond(send, 200, emu.send(parts[0], payload, forced_failure=forced_failure))
            return
        result = await self._other(scope, method, parts, body, query, record)
        await _respond(send, 200, result)

    async def _fault(self, decision: Decision, receive: Receive, send: Send) -> bool:
        """Play an injected fault other than an error code; True when it answered (or dropped) the request."""
        if decision.latency_s:
            await asyncio.sleep(decision.latency_s)
        if decision.action == "drop":
            await _drop(send)
            return True
        if decision.action == "timeout":
            await _hang(receive, self.emu.config.hang_seconds)
            await _respond(send, 504, GraphError(2, "Request timed out.").body())
            return True
        if decision.action == "5xx":
            await send({"type": "http.response.start", "status": 502,
                        "headers": [(b"content-type", b"text/html")]})
            await send({"type": "http.response.body", "body": _BAD_GATEWAY})
            return True
        if decision.action == "error":
            err = self.emu.error_for_fault(decision.code)
            if err is not None:
                raise err
        return False

    def _token_endpoint(self, scope: Scope, parts: list[str], body: bytes,
                        query: dict[str, list[str]]) -> dict[str, Any]:
        """`GET /debug_token` (authenticated as the app) and `GET|POST /oauth/access_token`."""
        tokens = self.emu.tokens
        params = _form_payload(body, {}) if _form(scope) and body else {}
        params = {k: v[0] for k, v in query.items()} | {k: str(v) for k, v in params.items()}
        if parts == ["debug_token"]:
            viewer = _token(scope, query)
            if not viewer:
                raise GraphError(104, None, message="An access token is required to request this resource.",
                                 http_status=401)
            if not tokens.is_app_token(viewer):
                if "|" in viewer:  # an app token with a wrong app id or secret
                    raise GraphError(190, None, message="Invalid OAuth access token signature.", http_status=400)
                tokens.check(viewer)  # a valid token of the app may look at tokens too
            return {"data": tokens.debug(params.get("input_token"))}
        grant = params.get("grant_type")
        client_id, secret = params.get("client_id"), params.get("client_secret")
        if grant == "client_credentials":
            return {"access_token": tokens.app_token(client_id, secret), "token_type": "bearer"}
        if grant == "fb_exchange_token":
            record = tokens.exchange(client_id, secret, params.get("fb_exchange_token"))
            expires_in = int(record.expires_at - self.emu.clock.now())
            return {"access_token": record.value, "token_type": "bearer", "expires_in": expires_in}
        raise GraphError(100, None, message="(#100) grant_type must be client_credentials or fb_exchange_token")

    async def _other(self, scope: Scope, method: str, parts: list[str], body: bytes,
                     query: dict[str, list[str]], record: TokenRecord | None) -> dict[str, Any]:
        emu = self.emu
        cfg = emu.config
        obj = parts[0]
        if len(parts) == 2:
            edge = parts[1]
            if edge == "media" and method == "POST":
                if obj != cfg.phone_number_id:
                    raise unknown_object(obj)
                _need(record, SCOPE_MESSAGING, cfg.waba_id)
                return await self._upload(scope, body)
            if edge == "message_templates":
                if obj != cfg.waba_id:
                    raise unknown_object(obj, method.lower())
                _need(record, SCOPE_MANAGEMENT, cfg.waba_id)
                return self._templates(method, body, query)
            raise unknown_object(obj, method.lower())
        if len(parts) != 1:
            raise param("Unknown path components.")
        media = emu.media.get(obj)
        if media is not None:
            _need(record, SCOPE_MESSAGING, cfg.waba_id)
            phone = _first(query, "phone_number_id")
            if phone is not None and media.phone_number_id and phone != media.phone_number_id:
                raise unknown_object(obj, method.lower())
            if method == "GET":
                token = emu.media.issue_url(media, emu.clock.now(), cfg.media_url_ttl_minutes * 60)
                base = _base_url(scope)
                ext = media.mime_type.split("/")[-1]
                return {
                    "messaging_product": "whatsapp",
                    "url": f"{base}/lookaside/whatsapp_business/attachments/?mid={media.id}&ext={ext}&hash={token}",
                    "mime_type": media.mime_type,
                    "sha256": media.sha256,
                    "file_size": media.file_size,
                    "id": media.id,
                }
            if method == "DELETE":
                emu.media.delete(obj)
                return {"success": True}
            raise unknown_object(obj, method.lower())
        template = emu.templates.get(obj)
        if template is not None:
            _need(record, SCOPE_MANAGEMENT, cfg.waba_id)
            if method == "GET":
                fields = _first(query, "fields")
                return template.as_json(set(fields.split(",")) if fields else None)
            if method == "POST":
                emu.templates.update(obj, _json_or_form(body, scope, query))
                return {"success": True}
            raise unknown_object(obj, method.lower())
        if obj == cfg.phone_number_id and method == "GET":
            _need(record, SCOPE_MANAGEMENT, cfg.waba_id)
            return {
                "verified_name": cfg.verified_name,
                "display_phone_number": cfg.display_phone_number,
                "id": cfg.phone_number_id,
                "quality_rating": "GREEN",
                "throughput": {"level": "HIGH" if cfg.throughput_mps > 80 else "STANDARD"},
                "code_verification_status": "VERIFIED",
                "platform_type": "CLOUD_API",
            }
        if obj == cfg.waba_id and method == "GET":
            _need(record, SCOPE_MANAGEMENT, cfg.waba_id)
            return {"id": cfg.waba_id, "name": cfg.verified_name, "currency": "USD", "timezone_id": "1",
                    "message_template_namespace": "emulator_namespace"}
        raise unknown_object(obj, method.lower())

    def _templates(self, method: str, body: bytes, query: dict[str, list[str]]) -> dict[str, Any]:
        emu = self.emu
        waba = emu.config.waba_id
        if method == "GET":
            items = emu.templates.all(waba)
            for key in ("name", "status", "category", "language"):
                want = _first(query, key)
                if want is not None:
                    items = [t for t in items if str(getattr(t, key)).lower() == want.lower()]
            fields = _first(query, "fields")
            wanted = set(fields.split(",")) if fields else None
            limit = _int_param(query, "limit", 100)
            after = _int_param(query, "after", 0)
            page = items[after:after + limit]
            paging: dict[str, Any] = {"cursors": {"before": str(after), "after": str(after + len(page))}}
            if after + limit < len(items):
                paging["next"] = f"?after={after + limit}&limit={limit}"
            return {"data": [t.as_json(wanted) for t in page], "paging": paging}
        if method == "POST":
            payload = orjson.loads(body) if body else None
            t = emu.templates.create(waba, payload, status="PENDING")
            return {"id": t.id, "status": t.status, "category": t.category}
        if method == "DELETE":
            name = _first(query, "name")
            if name is None:
                raise GraphError(100, None, message="(#100) The parameter name is required.")
            emu.templates.delete(waba, name, _first(query, "hsm_id"))
            return {"success": True}
        raise unknown_object(waba, method.lower())

    async def _upload(self, scope: Scope, body: bytes) -> dict[str, Any]:
        if len(body) > self.emu.config.max_upload_bytes:
            raise _TooLarge

        try:
            form = multipart.parse(_header(scope, b"content-type") or "", body)
        except ValueError:
            raise param("The request must be multipart/form-data with a file.") from None
        product = form.get("messaging_product")
        if product is None or product.text != "whatsapp":
            raise GraphError(100, None, message="(#100) The parameter messaging_product is required.")
        file = form.get("file")
        if file is None or file.filename is None:
            raise GraphError(100, None, message="(#100) The parameter file is required.")
        declared = form.get("type")
        media = self.emu.media.upload(
            self.emu.config.phone_number_id, (file.content_type or "application/octet-stream").strip(),
            declared.text if declared is not None else None, file.data, self.emu.clock.now(),
        )
        return {"id": media.id}

    async def _download(self, scope: Scope, send: Send, query: dict[str, list[str]]) -> None:
        emu = self.emu
        token = _token(scope, query)
        if not emu.tokens.is_valid(token):
            # Meta's lookaside answers an unauthenticated fetch without the file (an HTML/JSON error).
            err = GraphError(190, None, message="Invalid OAuth access token - Cannot parse access token",
                             http_status=401)
            await _respond(send, 401, err.body())
            return
        media = emu.media.by_url_token(_first(query, "hash") or "", emu.clock.now())
        if media is None or media.id != _first(query, "mid"):
            await _respond(send, 404, GraphError(100, "The media URL is invalid or has expired.").body())
            return
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", media.mime_type.encode()),
                                (b"content-length", str(media.file_size).encode())]})
        await send({"type": "http.response.body", "body": media.data})


# -- helpers -------------------------------------------------------------------------------
def _need(record: TokenRecord | None, scope: str, waba_id: str) -> None:
    """The token must carry `scope` (code 10 otherwise) and reach the WABA (code 200 otherwise).
    None: an app token, which carries no WhatsApp scope."""
    if record is None or scope not in record.scopes:
        raise GraphError(10, None, message=f"(#10) Requires {scope} permission to manage the object",
                         http_status=403)
    if record.targets and waba_id not in record.targets:
        raise GraphError(200, None, message="(#200) You do not have the necessary permissions required to use "
                         f"WhatsApp Business Account {waba_id}", http_status=403)


async def _respond(send: Send, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
    body = orjson.dumps(payload)
    hdrs = list(_JSON)
    hdrs.append((b"content-length", str(len(body)).encode()))
    if headers:
        hdrs.extend((k.lower().encode(), v.encode("latin-1", "replace")) for k, v in headers.items())
    await send({"type": "http.response.start", "status": status, "headers": hdrs})
    await send({"type": "http.response.body", "body": body})


async def _read_body(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
        more = message.get("more_body", False)
    return b"".join(chunks)


def _header(scope: Scope, name: bytes) -> str | None:
    for k, v in scope["headers"]:
        if k == name:
            return str(v.decode("latin-1"))
    return None


def _token(scope: Scope, query: dict[str, list[str]]) -> str | None:
    auth = _header(scope, b"authorization")
    if auth:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() in ("bearer", "oauth") and value.strip():
            return value.strip()
        return None
    return _first(query, "access_token")


def _first(query: dict[str, list[str]], key: str) -> str | None:
    values = query.get(key)
    return values[0] if values else None


def _base_url(scope: Scope) -> str:
    host = _header(scope, b"host")
    if host is None:
        server = scope.get("server") or ("127.0.0.1", 80)
        host = f"{server[0]}:{server[1]}"
    return f"{scope.get('scheme', 'http')}://{host}"


def _form(scope: Scope) -> bool:
    ctype = _header(scope, b"content-type") or ""
    return ctype.startswith("application/x-www-form-urlencoded")


def _form_payload(body: bytes, query: dict[str, list[str]]) -> dict[str, Any]:
    """Graph also takes parameters form-encoded or in the query; nested objects arrive as JSON text."""
    form = parse_qs(body.decode("utf-8", "replace"))
    fields = {k: v[0] for k, v in query.items()} | {k: v[0] for k, v in form.items()}
    fields.pop("access_token", None)
    out: dict[str, Any] = {}
    for k, v in fields.items():
        if v[:1] in ("{", "["):
            try:
                out[k] = orjson.loads(v)
                continue
            except orjson.JSONDecodeError:
                pass
        out[k] = v
    return out


def _json_or_form(body: bytes, scope: Scope, query: dict[str, list[str]]) -> Any:
    if _form(scope):
        return _form_payload(body, query)
    try:
        return orjson.loads(body) if body else {}
    except orjson.JSONDecodeError:
        raise param("The request body is not valid JSON.") from None


async def _drop(send: Send) -> None:
    """Close the connection without an answer. Reaches for uvicorn's transport; elsewhere it aborts mid-start."""
    cycle = getattr(send, "__self__", None)
    transport = getattr(cycle, "transport", None)
    if transport is not None:
        transport.abort() if hasattr(transport, "abort") else transport.close()
        with contextlib.suppress(Exception):
            # uvicorn expects a response; mark it done so it does not log a spurious error.
            cycle.response_complete = True  # type: ignore[union-attr]
        return
    raise ConnectionAbortedError("dropped by fault injection")


async def _hang(receive: Receive, seconds: float) -> None:
    """Hold the request until the client gives up (disconnects) or `seconds` pass."""

    async def disconnected() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(disconnected(), seconds)


def _int_param(query: dict[str, list[str]], name: str, default: int) -> int:
    """A non-negative integer query parameter (a paging cursor or limit), else Graph's code 100."""
    raw = _first(query, name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or len(raw) > 9:
        raise GraphError(100, f"Invalid parameter: {name} must be a non-negative integer")
    return int(raw)
