"""Media and template calls on the wire, against the scripted server (exact requests and answers)."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.responses import JSONResponse, Response, StreamingResponse

from waflow.cloudapi import CloudAPIClient, MediaTooLargeError, MessageValidationError, TemplateDefinition

from .conftest import PHONE_ID, TOKEN, WABA_ID
from .graph_server import GraphServer, Recorded, graph_error


async def test_upload_is_multipart_with_bare_mime(graph: GraphServer, client: CloudAPIClient) -> None:
    graph.handler = lambda r: JSONResponse({"id": "1037543291543636"})
    media_id = await client.media.upload(b"OggS...", "audio/ogg; codecs=opus", filename="note.ogg")
    assert media_id == "1037543291543636"
    (req,) = graph.requests
    assert (req.method, req.path) == ("POST", f"/v23.0/{PHONE_ID}/media")
    assert req.headers["content-type"].startswith("multipart/form-data")
    assert req.form["messaging_product"] == "whatsapp" and req.form["type"] == "audio/ogg"
    assert req.form["file"] == ("note.ogg", "audio/ogg", b"OggS...")


async def test_upload_limits_are_checked_locally(graph: GraphServer, client: CloudAPIClient) -> None:
    with pytest.raises(MessageValidationError, match=r"file: 5242881 bytes, at most 5242880 for image/jpeg"):
        await client.media.upload(b"x" * (5 * 1024 * 1024 + 1), "image/jpeg")
    assert graph.requests == []


def media_server(graph: GraphServer, payload: bytes, *, declare_length: bool = True) -> None:
    def handler(r: Recorded) -> Response:
        if r.path == "/v23.0/555":
            if r.method == "DELETE":
                return JSONResponse({"success": True})
            return JSONResponse({"messaging_product": "whatsapp", "id": "555", "mime_type": "image/jpeg",
                                 "sha256": "ab", "file_size": len(payload) if declare_length else None,
                                 "url": f"{graph.base_url}/lookaside/whatsapp_business/attachments/?mid=555"})
        if r.path.startswith("/lookaside/"):
            if r.headers.get("authorization") != f"Bearer {TOKEN}":
                return graph_error(190, "token required", status=401)
            if declare_length:
                return Response(payload, media_type="image/jpeg")

            async def chunks() -> Any:
                for i in range(0, len(payload), 1024):
                    yield payload[i:i + 1024]

            return StreamingResponse(chunks(), media_type="image/jpeg")  # chunked: no Content-Length
        return graph_error(100, "unexpected", status=400)

    graph.handler = handler


async def test_url_lookup_and_authenticated_download(graph: GraphServer, client: CloudAPIClient) -> None:
    media_server(graph, b"\xff\xd8" + b"j" * 5000)
    info = await client.media.get_url("555")
    assert info.mime_type == "image/jpeg" and info.file_size == 5002
    assert graph.requests[0].query == {"phone_number_id": PHONE_ID}
    media = await client.media.download("555")
    assert media.content.startswith(b"\xff\xd8") and len(media.content) == 5002 and media.mime_type == "image/jpeg"
    assert await client.media.delete("555") is True


async def test_download_is_bounded(graph: GraphServer, client: CloudAPIClient) -> None:
    media_server(graph, b"j" * 5000)
    with pytest.raises(MediaTooLargeError):  # refused from the declared file_size
        await client.media.download("555", max_bytes=4000)
    info = await client.media.get_url("555")
    with pytest.raises(MediaTooLargeError):  # refused from Content-Length
        await client.media.download_url(info.url, max_bytes=4000)
    media_server(graph, b"j" * 5000, declare_length=False)
    with pytest.raises(MediaTooLargeError):  # no length anywhere: cut off while streaming
        await client.media.download("555", max_bytes=4000)
    assert len((await client.media.download("555", max_bytes=5000)).content) == 5000


async def test_download_refreshes_a_rejected_token(graph: GraphServer) -> None:
    tokens = iter(["stale-token", TOKEN])
    media_server(graph, b"data")  # only the lookaside path checks the token
    async with CloudAPIClient(phone_number_id=PHONE_ID, token=lambda: next(tokens), base_url=graph.base_url) as c:
        assert (await c.media.download("555")).content == b"data"
    auth = [r.headers["authorization"] for r in graph.requests if r.path.startswith("/lookaside/")]
    assert auth == ["Bearer stale-token", f"Bearer {TOKEN}"]


async def test_templates_list_filters_and_paging(graph: GraphServer, client: CloudAPIClient) -> None:
    pages = {
        None: {"data": [{"id": "1", "name": "a", "status": "APPROVED", "language": "en_US", "category": "UTILITY"}],
               "paging": {"cursors": {"before": "b0", "after": "c1"}, "next": "https://graph/next"}},
        "c1": {"data": [{"id": "2", "name": "b", "status": "APPROVED", "language": "es", "category": "MARKETING"}],
               "paging": {"cursors": {"before": "c1", "after": "c2"}}},
    }
    graph.handler = lambda r: JSONResponse(pages[r.query.get("after")])
    names = [t.name async for t in client.templates.iter_all(page_size=1, status="APPROVED")]
    assert names == ["a", "b"]
    first, second = graph.requests
    assert first.path == f"/v23.0/{WABA_ID}/message_templates"
    assert first.query["limit"] == "1" and first.query["status"] == "APPROVED" and "after" not in first.query
    assert second.query["after"] == "c1"
    assert "name" in first.query["fields"] and "status" in first.query["fields"]


async def test_template_create_status_delete(graph: GraphServer, client: CloudAPIClient) -> None:
    def handler(r: Recorded) -> Response:
        if r.method == "POST":
            return JSONResponse({"id": "594425479261596", "status": "PENDING", "category": "UTILITY"})
        if r.method == "DELETE":
            return JSONResponse({"success": True})
        return JSONResponse({"id": "594425479261596", "status": "APPROVED"})

    graph.handler = handler
    created = await client.templates.create(TemplateDefinition(
        name="order_confirmation", language="en_US", category="UTILITY", parameter_format="named",
        components=[{"type": "BODY", "text": "Thanks {{first_name}}!",
                     "example": {"body_text_named_params": [{"param_name": "first_name", "example": "Pablo"}]}}]))
    assert (created.id, created.status) == ("594425479261596", "PENDING")
    assert graph.requests[0].json()["parameter_format"] == "named"
    assert await client.templates.status("594425479261596") == "APPROVED"
    assert graph.requests[1].path == "/v23.0/594425479261596" and graph.requests[1].query["fields"] == "id,status"
    assert await client.templates.delete("order_confirmation", template_id="594425479261596")
    assert graph.requests[2].query == {"name": "order_confirmation", "hsm_id": "594425479261596"}


@pytest.mark.parametrize(
    ("definition", "message"),
    [
        (dict(name="Order", components=[{"type": "BODY", "text": "x"}]), "name: lowercase letters"),
        (dict(name="ok", components=[]), "components: a template needs at least a BODY component"),
        (dict(name="ok", components=[{"type": "BODY", "text": "x" * 1025}]),
         "components[0].text: 1025 characters, at most 1024"),
        (dict(name="ok", components=[{"type": "BUTTONS", "buttons": [{"type": "QUICK_REPLY", "text": "y" * 26}]}]),
         "components[0].buttons[0].text: 26 characters, at most 25"),
    ],
)
async def test_template_definition_checked_locally(
    graph: GraphServer, client: CloudAPIClient, definition: dict[str, Any], message: str
) -> None:
    with pytest.raises(MessageValidationError, match=message.replace("[", r"\[").replace("]", r"\]")):
        await client.templates.create(TemplateDefinition(language="en_US", category="UTILITY", **definition))
    assert graph.requests == []
