"""The emulator-only control plane under `/_emulator/...` (JSON in, JSON out, no auth: localhost tooling).

No auth, but no cross-site requests either: a web page the developer visits must not be able to drive it
(advance the clock, expire tokens, inject messages). A browser sends a cross-site request without asking first
(a "simple" request) only with a form or text content type, or without a body; so every request that may change
something (any method but GET / HEAD / OPTIONS) must

- carry its body as `Content-Type: application/json` (any other content type, or a body without one: 415) —
  a page can send JSON cross-site only after a CORS preflight, which the control plane never grants;
- and come from no web page of another origin: a request whose `Origin` header is not this server's own
  (`http://<Host>`, or `https://<Host>`) is refused 403. Browsers send `Origin` with every such request, even
  a bodyless one; tools (httpx, curl) send none.
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, ValidationError
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from .config import StatusDelays
from .graph_errors import async_error
from .inbound import DEFAULT_MIME

if TYPE_CHECKING:
    from .core import Emulator


class ConfigPatch(BaseModel):
    """The run settings that may change while the emulator runs."""

    model_config = ConfigDict(extra="forbid")

    callback_url: str | None = None
    throughput_mps: float | None = None
    pair_rate_per_s: float | None = None
    pair_burst: int | None = None
    window_hours: float | None = None
    enforce_window: bool | None = None
    media_url_ttl_minutes: float | None = None
    webhook_retry_schedule: list[float] | None = None
    status_delays: StatusDelays | None = None
    status_contacts: bool | None = None


def public_config(emu: Emulator) -> dict[str, Any]:
    return emu.config.model_dump(
        exclude={"access_tokens", "issued_tokens", "app_secret", "verify_token", "templates"}
    )


def control_app(emu: Emulator) -> Starlette:
    async def body(request: Request) -> dict[str, Any]:
        raw = await request.body()
        if not raw:
            return {}
        try:
            data = await request.json()
        except ValueError:
            raise _Bad("body is not valid JSON") from None
        if not isinstance(data, dict):
            raise _Bad("body must be a JSON object")
        return data

    async def health(request: Request) -> Response:
        return JSONResponse({"ok": True})

    async def config(request: Request) -> Response:
        if request.method == "PATCH":
            patch = ConfigPatch.model_validate(await body(request))
            for key, value in patch.model_dump(exclude_unset=True).items():
                setattr(emu.config, key, value)
        return JSONResponse(public_config(emu))

    async def clock(request: Request) -> Response:
        if request.method == "POST":
            data = await body(request)
            seconds = float(data.get("seconds", 0)) + 60 * float(data.get("minutes", 0)) + 3600 * float(
                data.get("hours", 0)) + 86400 * float(data.get("days", 0))
            emu.clock.advance(seconds)
        return JSONResponse({"now": emu.clock.now(), "offset": emu.clock.offset})

    async def faults(request: Request) -> Response:
        if request.method in ("PUT", "PATCH", "POST"):
            try:
                emu.faults.set(**(await body(request)))
            except ValueError as e:
                raise _Bad(str(e)) from None
        elif request.method == "DELETE":
            emu.faults.clear()
        return JSONResponse(emu.faults.settings.model_dump(mode="json"))

    async def modes(request: Request) -> Response:
        if request.method in ("PUT", "PATCH", "POST"):
            emu.webhooks.set_modes(**(await body(request)))
        return JSONResponse(emu.webhooks.modes.model_dump())

    async def attempts(request: Request) -> Response:
        return JSONResponse([
            {"attempt": a.attempt, "status_code": a.status_code, "error": a.error, "updates": a.updates,
             "body": a.body.decode("ascii"), "signature": a.signature}
            for a in emu.webhooks.attempts
        ])

    async def verify(request: Request) -> Response:
        from .webhooks import verify_handshake

        url = (await body(request)).get("callback_url") or emu.config.callback_url
        if not url:
            raise _Bad("no callback_url configured")
        return JSONResponse({"verified": await verify_handshake(url, emu.config.verify_token)})

    async def tokens(request: Request) -> Response:
        data = await body(request)
        action = request.path_params["action"]
        if action == "expire":
            emu.tokens.expire(str(data.get("token") or emu.config.access_token))
            return JSONResponse({"success": True})
        if action == "rotate":
            return JSONResponse({"access_token": emu.tokens.rotate(bool(data.get("expire_old", True)))})
        if action == "add" and data.get("token"):
            emu.tokens.add(str(data["token"]))
            return JSONResponse({"success": True})
        if action == "issue":
            scopes, targets = data.get("scopes"), data.get("targets")
            expires_in = data.get("expires_in_s")
            try:
                record = emu.tokens.issue(
                    str(data.get("type", "SYSTEM_USER")),
                    expires_in=float(expires_in) if expires_in is not None else None,
                    scopes=[str(s) for s in scopes] if isinstance(scopes, list) else None,
                    targets=[str(t) for t in targets] if isinstance(targets, list) else None,
                )
            except (TypeError, ValueError) as e:
                raise _Bad(str(e)) from None
            return JSONResponse({"access_token": record.value, "type": record.type,
                                 "expires_at": int(record.expires_at)})
        if action == "revoke" and data.get("token"):
            emu.tokens.revoke(str(data["token"]))
            return JSONResponse({"success": True})
        raise _Bad("unknown token action (expire, rotate, add, issue, revoke)")

    async def user_messages(request: Request) -> Response:
        wa_id = request.path_params["wa_id"]
        data = await body(request)
        user = emu.state.user(wa_id, data.pop("name", None))
        wait = bool(data.pop("wait", True))
        mtype = data.get("type")
        if not isinstance(mtype, str) or mtype not in data:
            raise _Bad("a message needs 'type' and the object named after it")
        obj = data[mtype]
        if isinstance(obj, dict) and mtype in DEFAULT_MIME and "id" not in obj:
            raw = base64.b64decode(obj.pop("data_base64", "")) or b"emulator"
            mime = str(obj.get("mime_type") or DEFAULT_MIME[mtype])
            m = emu.media.add_inbound(mime.split(";")[0], raw, emu.clock.now())
            obj.update({"id": m.id, "mime_type": mime, "sha256": m.sha256})
        wamid, done = emu.inject(user, data)
        delivered = await done if wait else None
        return JSONResponse({"id": wamid, "delivered": delivered})

    async def user_received(request: Request) -> Response:
        user = emu.state.users.get(request.path_params["wa_id"])
        return JSONResponse([m.as_dict() for m in (user.received if user else [])])

    async def sent(request: Request) -> Response:
        return JSONResponse([m.as_dict() for m in emu.state.send_log])

    async def message_status(request: Request) -> Response:
        msg = emu.state.outbound.get(request.path_params["wamid"])
        if msg is None:
            return JSONResponse({"error": "unknown message"}, status_code=404)
        data = await body(request)
        status = data.get("status")
        if status == "failed":
            code = int(data.get("code", 131026))
            emu.emit_status(msg, "failed", [async_error(code, data.get("details"))])
        elif status in ("sent", "delivered", "read", "played"):
            emu.emit_status(msg, status)
        else:
            raise _Bad("status must be sent, delivered, read, played or failed")
        return JSONResponse(msg.as_dict())

    async def template_status(request: Request) -> Response:
        data = await body(request)
        try:
            t = emu.set_template_status(request.path_params["template_id"], str(data.get("status", "")),
                                        data.get("reason"))
        except KeyError:
            return JSONResponse({"error": "unknown template"}, status_code=404)
        except ValueError as e:
            raise _Bad(str(e)) from None
        return JSONResponse(t.as_json())

    async def reset_limits(request: Request) -> Response:
        emu.limits.reset()
        return JSONResponse({"success": True})

    async def on_bad(request: Request, exc: Exception) -> Response:
        return JSONResponse({"error": str(exc)}, status_code=400)

    routes = [
        Route("/_emulator/health", health),
        Route("/_emulator/config", config, methods=["GET", "PATCH"]),
        Route("/_emulator/clock", clock, methods=["GET", "POST"]),
        Route("/_emulator/clock/advance", clock, methods=["POST"]),
        Route("/_emulator/faults", faults, methods=["GET", "PUT", "PATCH", "POST", "DELETE"]),
        Route("/_emulator/webhooks/modes", modes, methods=["GET", "PUT", "PATCH", "POST"]),
        Route("/_emulator/webhooks/attempts", attempts),
        Route("/_emulator/webhooks/verify", verify, methods=["POST"]),
        Route("/_emulator/tokens/{action}", tokens, methods=["POST"]),
        Route("/_emulator/users/{wa_id}/messages", user_messages, methods=["POST"]),
        Route("/_emulator/users/{wa_id}/received", user_received),
        Route("/_emulator/sent", sent),
        Route("/_emulator/messages/{wamid}/status", message_status, methods=["POST"]),
        Route("/_emulator/templates/{template_id}/status", template_status, methods=["POST"]),
        Route("/_emulator/limits/reset", reset_limits, methods=["POST"]),
    ]
    return Starlette(routes=routes, exception_handlers={_Bad: on_bad, ValidationError: on_bad},
                     middleware=[Middleware(_SameSiteJsonOnly)])


_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class _SameSiteJsonOnly:
    """Refuses a state-changing request a browser page of another site could send without a preflight."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in _SAFE_METHODS:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        host = headers.get("host", "")
        if origin is not None and origin.lower() not in (f"http://{host}".lower(), f"https://{host}".lower()):
            response = JSONResponse({"error": "cross-site request refused: the control plane takes requests from "
                                              "tools or its own origin only"}, status_code=403)
            await response(scope, receive, send)
            return
        ctype = headers.get("content-type")
        has_body = "transfer-encoding" in headers or headers.get("content-length", "0").strip() not in ("", "0")
        media = ctype.split(";", 1)[0].strip().lower() if ctype is not None else None
        if (ctype is not None or has_body) and media != "application/json":
            response = JSONResponse({"error": "the control plane takes JSON: send the body with "
                                              "Content-Type: application/json"}, status_code=415)
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


class _Bad(Exception):
    """A control-plane request that makes no sense: answered 400 with the reason."""
