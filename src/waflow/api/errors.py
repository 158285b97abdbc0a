"""Error answers: one JSON shape, `{"error": <slug>, "message": ..., "problems": [{"field", "message", ...}]}`."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("waflow.api")


class ApiError(Exception):
    def __init__(self, status: int, error: str, message: str, problems: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message
        self.problems = problems or []


def problem(field: str, message: str, **more: Any) -> dict[str, Any]:
    return {"field": field, "message": message, **{k: v for k, v in more.items() if v is not None}}


def _field(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _body(exc: ApiError) -> dict[str, Any]:
    body: dict[str, Any] = {"error": exc.error, "message": exc.message}
    if exc.problems:
        body["problems"] = exc.problems
    return body


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return JSONResponse(_body(exc), status_code=exc.status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [problem(_field(tuple(e.get("loc", ()))), str(e.get("msg", "invalid"))) for e in exc.errors()]
        message = "; ".join(f"{p['field']}: {p['message']}" for p in problems[:5]) or "invalid request"
        return JSONResponse({"error": "invalid_request", "message": message, "problems": problems}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        slug = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse({"error": slug, "message": str(exc.detail)}, status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("admin API %s %s failed: %s", request.method, request.url.path, type(exc).__name__, exc_info=exc)
        return JSONResponse({"error": "internal", "message": "internal error (logged)"}, status_code=500)
