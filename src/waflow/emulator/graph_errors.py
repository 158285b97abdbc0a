"""Graph-style error answers, built from the one code table in `waflow.cloudapi.errors`."""

from __future__ import annotations

from typing import Any

from waflow.cloudapi.errors import spec_for

from .ids import trace_id

ERROR_HREF = "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/"


class GraphError(Exception):
    """An error the emulator answers with Meta's envelope; never carries secrets in its text."""

    def __init__(
        self,
        code: int,
        details: str | None = None,
        *,
        message: str | None = None,
        subcode: int | None = None,
        http_status: int | None = None,
        type_: str = "OAuthException",
        headers: dict[str, str] | None = None,
    ) -> None:
        spec = spec_for(code)
        self.code = code
        self.title = spec.title if spec else "Unknown error"
        if details is None:
            # Graph-level errors with their own message carry no WhatsApp error_data.
            details = "" if message is not None else (spec.details if spec else "")
        self.details = details
        self.message = message or f"(#{code}) {self.title}"
        self.subcode = subcode
        self.http_status = http_status or (spec.http_status if spec else 400)
        self.type = type_
        self.headers = headers or {}
        super().__init__(self.message)

    def body(self) -> dict[str, Any]:
        err: dict[str, Any] = {"message": self.message, "type": self.type, "code": self.code}
        if self.details:
            err["error_data"] = {"messaging_product": "whatsapp", "details": self.details}
        if self.subcode is not None:
            err["error_subcode"] = self.subcode
        err["fbtrace_id"] = trace_id()
        return {"error": err}


def invalid(details: str) -> GraphError:
    """131009: the catch-all for a present but unacceptable value."""
    return GraphError(131009, details)


def missing(details: str) -> GraphError:
    return GraphError(131008, details)


def param(details: str, *, subcode: int | None = None) -> GraphError:
    """Graph's generic (#100) Invalid parameter."""
    return GraphError(100, details, subcode=subcode)


def unknown_object(obj_id: str, method: str = "post") -> GraphError:
    return GraphError(
        100,
        None,
        message=(
            f"Unsupported {method} request. Object with ID '{obj_id}' does not exist, cannot be loaded due to "
            "missing permissions, or does not support this operation. Please read the Graph API documentation "
            "at https://developers.facebook.com/docs/graph-api"
        ),
        subcode=33,
        type_="GraphMethodException",
        http_status=400,
    )


def async_error(code: int, details: str | None = None) -> dict[str, Any]:
    """The `errors[]` item of a failed status webhook."""
    spec = spec_for(code)
    title = spec.title if spec else "Unknown error"
    return {
        "code": code,
        "title": title,
        "message": title,
        "error_data": {"details": details if details is not None else (spec.details if spec else "")},
        "href": ERROR_HREF,
    }
