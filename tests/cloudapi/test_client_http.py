"""The client over a real localhost socket, against a scripted Graph server (exact bodies and faults)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from starlette.responses import JSONResponse, PlainTextResponse, Response

from waflow.canonical import OutboundMessage
from waflow.cloudapi import (
    CallableTokenProvider,
    CloudAPIClient,
    ConnectTimeout,
    Contact,
    ContactName,
    InvalidRecipientError,
    MessageValidationError,
    NetworkError,
    PermanentError,
    RetryableError,
    SendTimeout,
    Template,
    TemplateError,
    Timeouts,
    TokenError,
    UserId,
)

from .conftest import PHONE_ID, TOKEN
from .graph_server import GraphServer, Recorded, graph_error, run_raw_server, sent

MESSAGES_PATH = f"/v23.0/{PHONE_ID}/messages"


async def test_send_text_wire_and_result(graph: GraphServer, client: CloudAPIClient) -> None:
    graph.handler = lambda r: JSONResponse({
        "messaging_product": "whatsapp", "contacts": [{"input": "+34 600 111 222", "wa_id": "34600111222"}],
        "messages": [{"id": "wamid.ABC", "message_status": "accepted"}]})
    result = await client.send_text("+34 600 111 222", "hello", preview_url=True, reply_to="wamid.Q",
                                    biz_opaque_callback_data="outbox:1")
    assert result.message_id == "wamid.ABC" and result.wa_id == "34600111222"
    assert result.message_status == "accepted" and not result.held_for_quality_assessment
    (req,) = graph.requests
    assert (req.method, req.path) == ("POST", MESSAGES_PATH)
    assert req.headers["authorization"] == f"Bearer {TOKEN}"
    assert req.headers["content-type"] == "application/json"
    assert req.json() == {"messaging_product": "whatsapp", "recipient_type": "individual", "to": "+34 600 111 222",
                          "context": {"message_id": "wamid.Q"}, "biz_opaque_callback_data": "outbox:1",
                          "type": "text", "text": {"body": "hello", "preview_url": True}}


async def test_every_convenience_method_sends_its_wire_shape(graph: GraphServer, client: CloudAPIClient) -> None:
    to = "34600111222"
    await client.send_image(to, "https://x.example/a.jpg", caption="pic")
    await client.send_video(to, "1234", caption="vid")
    await client.send_audio(to, "1234", voice=True)
    await client.send_document(to, "1234", filename="a.pdf", caption="doc")
    await client.send_sticker(to, "1234")
    await client.send_location(to, 37.44, -122.16, name="Philz", address="101 Forest Ave")
    await client.send_contacts(to, [Contact(name=ContactName(formatted_name="Ana"))])
    await client.send_reaction(to, "wamid.X", "👍")
    await client.send_buttons(to, "Pick", {"yes": "Yes", "no": "No"}, header="Q", footer="f")
    await client.send_list(to, "Menu", "Open", {"Mains": [("1", "Paella", "rice"), ("2", "Tortilla")]})
    await client.send_cta_url(to, "Track", "Open", "https://x.example/t")
    await client.send_location_request(to, "Where?")
    await client.send_template(to, "order", "en_US", body=["Ana"], buttons=[Template.quick_reply(0, "C")])
    await client.send_text(UserId("US.1349"), "by bsuid")
    bodies = [r.json() for r in graph.requests]
    assert [b["type"] for b in bodies] == ["image", "video", "audio", "document", "sticker", "location", "contacts",
                                           "reaction", "interactive", "interactive", "interactive", "interactive",
                                           "template", "text"]
    assert bodies[0]["image"] == {"link": "https://x.example/a.jpg", "caption": "pic"}
    assert bodies[1]["video"] == {"id": "1234", "caption": "vid"}
    assert bodies[2]["audio"] == {"id": "1234", "voice": True}
    assert bodies[3]["document"] == {"id": "1234", "caption": "doc", "filename": "a.pdf"}
    assert bodies[5]["location"] == {"latitude": 37.44, "longitude": -122.16, "name": "Philz",
                                     "address": "101 Forest Ave"}
    assert bodies[6]["contacts"] == [{"name": {"formatted_name": "Ana"}}]
    assert bodies[7]["reaction"] == {"message_id": "wamid.X", "emoji": "👍"}
    assert bodies[8]["interactive"]["action"]["buttons"][1] == {"type": "reply", "reply": {"id": "no", "title": "No"}}
    assert bodies[9]["interactive"]["action"]["sections"][0]["rows"][1] == {"id": "2", "title": "Tortilla"}
    assert bodies[10]["interactive"]["action"] == {"name": "cta_url", "parameters": {
        "display_text": "Open", "url": "https://x.example/t"}}
    assert bodies[11]["interactive"] == {"type": "location_request_message", "body": {"text": "Where?"},
                                         "action": {"name": "send_location"}}
    assert bodies[12]["template"]["components"][1] == {"type": "button", "sub_type": "quick_reply", "index": "0",
                                                       "parameters": [{"type": "payload", "payload": "C"}]}
    assert "to" not in bodies[13] and bodies[13]["recipient"] == "US.1349"


async def test_generic_send_takes_an_outbound_message(graph: GraphServer, client: CloudAPIClient) -> None:
    msg = OutboundMessage(to="34600111222", type="interactive", reply_to="wamid.Q",
                          content={"type": "button", "body": {"text": "Go?"},
                                   "action": {"buttons": [{"type": "reply", "reply": {"id": "y", "title": "Yes"}}]}})
    result = await client.send(msg, biz_opaque_callback_data="outbox:7")
    assert result.message_id == "wamid.TEST"
    body = graph.requests[0].json()
    assert body["biz_opaque_callback_data"] == "outbox:7" and body["context"] == {"message_id": "wamid.Q"}
    card = {"name": {"formatted_name": "A"}}
    await client.send(OutboundMessage(to="1", type="contacts", content={"contacts": [card]}))
    assert graph.requests[1].json()["contacts"] == [{"name": {"formatted_name": "A"}}]


async def test_validation_happens_before_any_http(graph: GraphServer, client: CloudAPIClient) -> None:
    with pytest.raises(MessageValidationError, match=r"interactive\.action\.buttons\[1\]\.reply\.title"):
        await client.send_buttons("1", "Pick", [("a", "A"), ("b", "x" * 21)])
    with pytest.raises(MessageValidationError):
        await client.send(OutboundMessage(to="1", type="text", content={"body": "x" * 5000}))
    with pytest.raises(MessageValidationError):
        await client.send_image("1", "not-a-url-or-id?", caption="c" * 2000)
    assert graph.requests == []


async def test_mark_read_and_typing(graph: GraphServer, client: CloudAPIClient) -> None:
    graph.handler = lambda r: JSONResponse({"success": True})
    assert await client.mark_read("wamid.IN") is True
    assert await client.send_typing("wamid.IN") is True
    assert graph.requests[0].json() == {"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.IN"}
    assert graph.requests[1].json()["typing_indicator"] == {"type": "text"}


# -- errors ------------------------------------------------------------------------------------


async def test_throughput_error_is_retryable_with_details(graph: GraphServer, client: CloudAPIClient) -> None:
    graph.handler = lambda r: graph_error(130429, "(#130429) Rate limit hit", error_subcode=2494055,
                                          details="Cloud API message throughput has been reached.")
    with pytest.raises(RetryableError) as info:
        await client.send_text("1", "hi")
    e = info.value
    assert (e.code, e.subcode, e.http_status, e.fbtrace_id) == (130429, 2494055, 400, "AbCdEfGhIjK")
    assert e.details == "Cloud API message throughput has been reached." and not e.outcome_unknown


async def test_template_missing_is_a_404_template_error(graph: GraphServer, client: CloudAPIClient) -> None:
    graph.handler = lambda r: graph_error(132001, "(#132001) Template name does not exist in the translation",
                                          status=404, details="template name (nope) does not exist in en_US")
    with pytest.raises(TemplateError) as info:
        await client.send_template("1", "nope", "en_US")
    assert info.value.http_status == 404 and "nope" in info.value.details


async def test_5xx_with_envelope_and_proxy_5xx(graph: GraphServer, client: CloudAPIClient) -> None:
    graph.handler = lambda r: graph_error(131000, "(#131000) Something went wrong", status=500)
    with pytest.raises(RetryableError) as info:
        await client.send_text("1", "hi")
    assert info.value.max_attempts == 3 and not info.value.outcome_unknown
    graph.handler = lambda r: PlainTextResponse("<html>Bad Gateway</html>", status_code=502)
    with pytest.raises(RetryableError) as info:
        await client.send_text("1", "hi")
    assert info.value.code is None and info.value.outcome_unknown  # the gateway may have forwarded it
    graph.handler = lambda r: PlainTextResponse("busy", status_code=503, headers={"Retry-After": "9"})
    with pytest.raises(RetryableError) as info:
        await client.send_text("1", "hi")
    assert info.value.retry_after_s == 9 and not info.value.outcome_unknown


async def test_invalid_recipient_and_invalid_parameter(graph: GraphServer, client: CloudAPIClient) -> None:
    graph.handler = lambda r: graph_error(131030, "(#131030) Recipient phone number not in allowed list")
    with pytest.raises(InvalidRecipientError):
        await client.send_text("1", "hi")
    graph.handler = lambda r: graph_error(100, "(#100) Invalid parameter", details="Param text['body'] is invalid")
    with pytest.raises(PermanentError) as info:
        await client.send_text("1", "hi")
    assert info.value.details == "Param text['body'] is invalid"


# -- tokens ------------------------------------------------------------------------------------


def auth_gate(valid: set[str]) -> Any:
    def handler(r: Recorded) -> Response:
        if r.headers.get("authorization", "").removeprefix("Bearer ") not in valid:
            return graph_error(190, "Error validating access token: Session has expired", status=401,
                               error_subcode=463)
        return sent()
    return handler


async def test_token_refreshed_once_and_replayed(graph: GraphServer) -> None:
    tokens = iter(["old-token-aaaa", "new-token-bbbb"])
    calls: list[bool] = []

    async def fetch() -> str:
        calls.append(True)
        return next(tokens)

    graph.handler = auth_gate({"new-token-bbbb"})
    async with CloudAPIClient(phone_number_id=PHONE_ID, token=fetch, base_url=graph.base_url) as c:
        assert (await c.send_text("1", "hi")).message_id == "wamid.TEST"
        assert (await c.send_text("1", "again")).message_id == "wamid.TEST"  # cached new token
    assert len(calls) == 2
    assert [r.headers["authorization"] for r in graph.requests] == [
        "Bearer old-token-aaaa", "Bearer new-token-bbbb", "Bearer new-token-bbbb"]


async def test_second_token_failure_raises_token_error(graph: GraphServer) -> None:
    counter = iter(range(100))
    graph.handler = auth_gate(set())
    async with CloudAPIClient(phone_number_id=PHONE_ID, token=lambda: f"tok-{next(counter)}",
                              base_url=graph.base_url) as c:
        with pytest.raises(TokenError) as info:
            await c.send_text("1", "hi")
    assert info.value.code == 190 and info.value.subcode == 463 and info.value.http_status == 401
    assert len(graph.requests) == 2  # the original and exactly one replay


async def test_static_token_rejected_is_not_replayed(graph: GraphServer) -> None:
    graph.handler = auth_gate(set())
    async with CloudAPIClient(phone_number_id=PHONE_ID, token=TOKEN, base_url=graph.base_url) as c:
        with pytest.raises(TokenError):
            await c.send_text("1", "hi")
    assert len(graph.requests) == 1  # nothing newer to try


async def test_concurrent_rejections_share_one_refresh(graph: GraphServer) -> None:
    calls: list[int] = []

    async def fetch() -> str:
        calls.append(1)
        await asyncio.sleep(0.01)
        return "fresh-token" if len(calls) > 1 else "stale-token"

    graph.handler = auth_gate({"fresh-token"})
    async with CloudAPIClient(phone_number_id=PHONE_ID, token=fetch, base_url=graph.base_url) as c:
        results = await asyncio.gather(*(c.send_text("1", f"m{i}") for i in range(20)))
    assert len(results) == 20 and len(calls) == 2


async def test_token_provider_failure_is_a_token_error(graph: GraphServer) -> None:
    from waflow.cloudapi import EnvTokenProvider

    async with CloudAPIClient(phone_number_id=PHONE_ID, token=EnvTokenProvider("WAFLOW_UNSET_VAR_X"),
                              base_url=graph.base_url) as c:
        with pytest.raises(TokenError, match="WAFLOW_UNSET_VAR_X is not set"):
            await c.send_text("1", "hi")
    assert graph.requests == []


async def test_tokens_never_leak(graph: GraphServer, caplog: pytest.LogCaptureFixture) -> None:
    secret_old, secret_new = "EAAold-SECRET-1111", "EAAnew-SECRET-2222"
    tokens = iter([secret_old, secret_new, secret_new])

    def handler(r: Recorded) -> Response:
        if r.headers["authorization"].endswith(secret_old):
            # Graph echoes malformed tokens in some messages.
            return graph_error(190, f"Malformed access token {secret_old}", status=401)
        return graph_error(131026, f"(#131026) Message undeliverable {secret_new}", details=secret_new)

    graph.handler = handler
    caplog.set_level(logging.DEBUG)
    provider = CallableTokenProvider(lambda: next(tokens))
    seen: list[str] = []
    async with CloudAPIClient(phone_number_id=PHONE_ID, token=provider, base_url=graph.base_url) as c:
        seen += [repr(c), str(c), repr(provider), repr(c.transport), repr(c.media), repr(c.templates)]
        with pytest.raises(InvalidRecipientError) as info:
            await c.send_text("1", "hi")
        exc = info.value
        seen += [str(exc), repr(exc), repr(exc.info), str(exc.args)]
    seen += [rec.getMessage() for rec in caplog.records] + [caplog.text]
    assert any("POST" in rec.getMessage() for rec in caplog.records)  # logging did happen
    for text in seen:
        assert secret_old not in text and secret_new not in text, text
        assert "Bearer" not in text


# -- transport failures --------------------------------------------------------------------------


async def test_read_timeout_is_an_unknown_outcome(graph: GraphServer) -> None:
    async def slow(r: Recorded) -> Response:
        await asyncio.sleep(2)
        return sent()

    graph.handler = slow
    async with CloudAPIClient(phone_number_id=PHONE_ID, token=TOKEN, base_url=graph.base_url,
                              timeouts=Timeouts(read=0.2)) as c:
        with pytest.raises(SendTimeout) as info:
            await c.send_text("1", "hi")
    assert info.value.outcome_unknown and info.value.retryable
    assert len(graph.requests) == 1  # it did reach the server: hence "unknown"


async def test_total_timeout_bounds_a_trickling_answer(graph: GraphServer) -> None:
    async def slow(r: Recorded) -> Response:
        await asyncio.sleep(2)
        return sent()

    graph.handler = slow
    async with CloudAPIClient(phone_number_id=PHONE_ID, token=TOKEN, base_url=graph.base_url,
                              timeouts=Timeouts(read=10, total=0.2)) as c:
        with pytest.raises(SendTimeout):
            await c.send_text("1", "hi")


async def test_connection_refused_is_a_known_outcome() -> None:
    from .graph_server import free_socket

    sock = free_socket()
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    async with CloudAPIClient(phone_number_id=PHONE_ID, token=TOKEN, base_url=f"http://127.0.0.1:{port}") as c:
        with pytest.raises(NetworkError) as info:
            await c.send_text("1", "hi")
    assert not info.value.outcome_unknown and not isinstance(info.value, SendTimeout)


async def test_connect_timeout_is_a_known_outcome() -> None:
    # A listening socket with a full accept backlog never completes the handshake... not portable;
    # a non-routable address (TEST-NET-1) is: the SYN goes nowhere.
    async with CloudAPIClient(phone_number_id=PHONE_ID, token=TOKEN, base_url="http://192.0.2.1:81",
                              timeouts=Timeouts(connect=0.2)) as c:
        with pytest.raises(NetworkError) as info:
            await c.send_text("1", "hi")
    assert not info.value.outcome_unknown
    assert isinstance(info.value, ConnectTimeout) or "cannot connect" in str(info.value)


async def test_dropped_connection_is_an_unknown_outcome() -> None:
    received: list[bytes] = []

    async def drop(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.append(await reader.read(65536))  # take the request, then hang up without answering
        writer.close()

    async with run_raw_server(drop) as url, CloudAPIClient(phone_number_id=PHONE_ID, token=TOKEN, base_url=url) as c:
        with pytest.raises(NetworkError) as info:
            await c.send_text("1", "hi")
    assert info.value.outcome_unknown and info.value.retryable
    assert received and received[0].startswith(b"POST ")
    assert TOKEN not in str(info.value)


async def test_unparseable_success_is_an_unknown_outcome(graph: GraphServer, client: CloudAPIClient) -> None:
    graph.handler = lambda r: PlainTextResponse("ok", status_code=200)
    with pytest.raises(PermanentError) as info:
        await client.send_text("1", "hi")
    assert info.value.outcome_unknown
    graph.handler = lambda r: JSONResponse({"messaging_product": "whatsapp"})
    with pytest.raises(PermanentError) as info:
        await client.send_text("1", "hi")
    assert info.value.outcome_unknown


async def test_connections_are_pooled(graph: GraphServer, client: CloudAPIClient) -> None:
    for _ in range(5):
        await client.send_text("1", "hi")
    # uvicorn keeps one connection alive: every request after the first reuses it.
    assert len({r.headers.get("host") for r in graph.requests}) == 1
    # A quiet client keeps to its first pool and one connection.
    pools = [lane._transport._pool for lane in client.transport._lanes]  # type: ignore[attr-defined]
    assert [len(p.connections) for p in pools] == [1] + [0] * (len(pools) - 1)


async def test_typed_argument_errors_are_validation_errors(graph: GraphServer, client: CloudAPIClient) -> None:
    with pytest.raises(MessageValidationError) as info:
        await client.send_location("1", "north", 3.0)  # type: ignore[arg-type]
    assert info.value.path == "location.latitude"
    with pytest.raises(MessageValidationError, match=r"^interactive\.action\.buttons\[0\]\.reply\.title: "):
        await client.send_buttons("1", "Pick", [("a", None)])  # type: ignore[list-item]
    assert graph.requests == []


async def test_send_accepts_typed_messages_and_raw_bodies(graph: GraphServer, client: CloudAPIClient) -> None:
    from waflow.cloudapi import SendMessage, Text

    await client.send(SendMessage(to="1", content=Text(body="typed")), biz_opaque_callback_data="cb")
    await client.send({"to": "1", "type": "text", "text": {"body": "raw"}})
    first, second = (r.json() for r in graph.requests)
    assert first["text"] == {"body": "typed"} and first["biz_opaque_callback_data"] == "cb"
    assert second == {"to": "1", "type": "text", "text": {"body": "raw"}, "messaging_product": "whatsapp"}
    with pytest.raises(MessageValidationError, match="to: give exactly one"):
        await client.send({"type": "text", "text": {"body": "nobody"}})
