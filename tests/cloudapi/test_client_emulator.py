"""The client against the emulator on a real localhost socket: every type, every error class."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from waflow.canonical import OutboundMessage
from waflow.cloudapi import (
    CloudAPIClient,
    Contact,
    ContactName,
    ContactPhone,
    ErrorClass,
    Interactive,
    InteractiveHeader,
    MediaRef,
    MediaTooLargeError,
    MessageValidationError,
    NetworkError,
    OutsideWindowError,
    PermanentError,
    RetryableError,
    RetryScope,
    SendTimeout,
    Template,
    TemplateDefinition,
    TemplateError,
    Timeouts,
    TokenError,
    classify_async_error,
)

emulator = pytest.importorskip("waflow.emulator")
EmulatorConfig = emulator.EmulatorConfig
run_emulator = emulator.run_emulator

USER = "34600111222"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 2048


def open_config(**kw: Any) -> Any:
    kw.setdefault("enforce_window", False)
    kw.setdefault("throughput_mps", 10_000)
    kw.setdefault("pair_burst", 1000)
    return EmulatorConfig(**kw)


def client_for(emu: Any, **kw: Any) -> CloudAPIClient:
    kw.setdefault("token", emu.config.access_token)
    kw.setdefault("phone_number_id", emu.config.phone_number_id)
    return CloudAPIClient(waba_id=emu.config.waba_id, base_url=emu.base_url, **kw)


@pytest.fixture
async def emu() -> AsyncIterator[Any]:
    async with run_emulator(open_config()) as handle:
        yield handle


@pytest.fixture
async def wa(emu: Any) -> AsyncIterator[CloudAPIClient]:
    async with client_for(emu, timeouts=Timeouts(connect=2, read=3, total=5)) as c:
        yield c


async def test_every_message_type_is_accepted_and_received(emu: Any, wa: CloudAPIClient) -> None:
    user = emu.user(USER, name="Ana")
    inbound = await user.send_text("hola")
    sends = [
        wa.send_text(USER, "hello *world* https://x.example", preview_url=True, reply_to=inbound,
                     biz_opaque_callback_data="outbox:1"),
        wa.send_image(USER, "https://x.example/b.jpg", caption="a picture"),
        wa.send_image(USER, "https://x.example/a.jpg"),
        wa.send_video(USER, "https://x.example/a.mp4", caption="clip"),
        wa.send_audio(USER, "https://x.example/a.ogg", voice=True),
        wa.send_document(USER, "https://x.example/a.pdf", filename="a.pdf", caption="doc"),
        wa.send_sticker(USER, "https://x.example/a.webp"),
        wa.send_location(USER, 40.4168, -3.7038, name="Sol", address="Madrid"),
        wa.send_contacts(USER, [Contact(
            name=ContactName(formatted_name="Bea", first_name="Bea"),
            phones=[ContactPhone(phone="+34600999888", type="CELL", wa_id="34600999888")])]),
        wa.send_reaction(USER, inbound, "👍"),
        wa.send_buttons(USER, "Pick one", [("yes", "Yes"), ("no", "No"), ("later", "Later")],
                        header=InteractiveHeader(type="image", image=MediaRef(link="https://x.example/h.png")),
                        footer="footer"),
        wa.send_list(USER, "Menu", "Open", {"Mains": [("p", "Paella", "rice")], "Desserts": [("f", "Flan")]},
                     header="Today", footer="bye"),
        wa.send_cta_url(USER, "Track your order", "Track", "https://x.example/t/1"),
        wa.send_location_request(USER, "Where are you?"),
    ]
    results = []
    for coro in sends:  # in order: the user's inbox must read in this order
        results.append(await coro)
    assert all(r.message_id.startswith("wamid.") for r in results)
    assert results[0].wa_id == USER
    got = user.received()
    assert [m.type for m in got] == ["text", "image", "image", "video", "audio", "document", "sticker", "location",
                                     "contacts", "reaction", "interactive", "interactive", "interactive",
                                     "interactive"]
    assert [m.wamid for m in got] == [r.message_id for r in results]
    assert got[0].context_id == inbound and got[0].callback_data == "outbox:1"
    assert got[0].content["body"].startswith("hello")
    assert got[1].content == {"link": "https://x.example/b.jpg", "caption": "a picture"}
    assert got[11].content["action"]["sections"][1]["rows"][0]["id"] == "f"
    assert got[13].content["type"] == "location_request_message"
    assert (await user.wait_for_status(results[0].message_id, "delivered")).status in ("delivered", "read")


async def test_templates_positional_named_currency_and_buttons(emu: Any, wa: CloudAPIClient) -> None:
    emu.add_template("order_update", "Hi {{1}}, order {{2}} costs {{3}}", category="UTILITY",
                     components=[{"type": "BODY", "text": "Hi {{1}}, order {{2}} costs {{3}}",
                                  "example": {"body_text": [["Ana", "42", "$1"]]}},
                                 {"type": "BUTTONS", "buttons": [
                                     {"type": "URL", "text": "Track", "url": "https://x.example/t/{{1}}",
                                      "example": ["https://x.example/t/42"]},
                                     {"type": "COPY_CODE", "text": "Copy code", "example": "SAVE10"}]}])
    emu.add_template("welcome_named", parameter_format="named",
                     components=[{"type": "BODY", "text": "Welcome {{first_name}}",
                                  "example": {"body_text_named_params": [{"param_name": "first_name",
                                                                          "example": "Ana"}]}}])
    from waflow.cloudapi import Currency, TemplateParameter

    r1 = await wa.send_template(USER, "order_update", "en_US", body=[
        TemplateParameter.of_text("Ana"), TemplateParameter.of_text("42"),
        TemplateParameter(type="currency", currency=Currency(fallback_value="$19.99", code="USD", amount_1000=19990)),
    ], buttons=[Template.url_button(0, "42"), Template.copy_code(1, "SAVE10")])
    assert r1.message_status == "accepted"
    r2 = await wa.send_template(USER, "welcome_named", "en_US", body={"first_name": "Ana"})
    got = emu.user(USER).received()
    assert [m.wamid for m in got] == [r1.message_id, r2.message_id]
    assert got[0].content["components"][1]["parameters"] == [{"type": "text", "text": "42"}]
    assert got[0].content["components"][2]["parameters"] == [{"type": "coupon_code", "coupon_code": "SAVE10"}]


async def test_generic_send_of_an_outbound_message(emu: Any, wa: CloudAPIClient) -> None:
    msg = OutboundMessage(to=USER, type="interactive",
                          content=Interactive.reply_buttons("Go?", [("y", "Yes")]).wire())
    result = await wa.send(msg, biz_opaque_callback_data="outbox:99")
    assert emu.sends_by_callback_data() == {"outbox:99": 1}
    assert emu.message(result.message_id).type == "interactive"


async def test_send_by_business_scoped_user_id(emu: Any, wa: CloudAPIClient) -> None:
    from waflow.cloudapi import UserId

    user = emu.user(USER)
    await user.send_text("hi")
    result = await wa.send_text(UserId(user.user_id), "by bsuid")
    assert user.received()[-1].wamid == result.message_id


async def test_mark_read_and_typing(emu: Any, wa: CloudAPIClient) -> None:
    inbound = await emu.user(USER).send_text("hola")
    assert await wa.mark_read(inbound)
    assert await wa.send_typing(inbound)
    state = emu.emulator.state
    assert state.read_receipts == [inbound, inbound] or state.typing_indicators == [inbound]


async def test_validation_fails_before_any_http(emu: Any, wa: CloudAPIClient) -> None:
    with pytest.raises(MessageValidationError, match=r"buttons\[3\]|4 buttons"):
        await wa.send_buttons(USER, "Pick", [(str(i), f"B{i}") for i in range(4)])
    with pytest.raises(MessageValidationError, match=r"reaction\.message_id"):
        await wa.send(OutboundMessage(to=USER, type="reaction", content={"emoji": "👍"}))
    with pytest.raises(MessageValidationError, match="rows in total"):
        await wa.send_list(USER, "Menu", "Open", {"": [(str(i), f"Row {i}") for i in range(11)]})
    assert emu.sent() == []


# -- error classes -----------------------------------------------------------------------------


async def test_expired_token_is_refreshed_once() -> None:
    async with run_emulator(open_config()) as emu:
        current = {"token": emu.config.access_token}
        calls: list[int] = []

        def provider() -> str:
            calls.append(1)
            return current["token"]

        async with client_for(emu, token=provider) as wa:
            await wa.send_text(USER, "one")
            current["token"] = emu.rotate_token()  # the old token now answers 190/463
            await wa.send_text(USER, "two")
            assert len(calls) == 2
            emu.rotate_token()  # the provider still hands out the expired token
            with pytest.raises(TokenError) as info:
                await wa.send_text(USER, "three")
        assert info.value.code == 190 and info.value.http_status == 401 and info.value.subcode == 463
        assert len(calls) == 3 and len(emu.sent()) == 2


async def test_throughput_limit_130429() -> None:
    async with run_emulator(open_config(throughput_mps=5)) as emu, client_for(emu) as wa:
        outcomes = await asyncio.gather(*(wa.send_text(f"3460000{i:04d}", "hi") for i in range(12)),
                                        return_exceptions=True)
    errors = [o for o in outcomes if isinstance(o, Exception)]
    assert errors and all(isinstance(e, RetryableError) and e.code == 130429 for e in errors)
    assert errors[0].retry_after_s == 1.0 and errors[0].scope is RetryScope.NUMBER  # type: ignore[union-attr]


async def test_pair_rate_limit_131056() -> None:
    async with run_emulator(open_config(pair_burst=2)) as emu, client_for(emu) as wa:
        await wa.send_text(USER, "1")
        await wa.send_text(USER, "2")
        with pytest.raises(RetryableError) as info:
            await wa.send_text(USER, "3")
        await wa.send_text("34600999000", "another recipient is unaffected")
    assert info.value.code == 131056 and info.value.scope is RetryScope.RECIPIENT
    assert info.value.retry_after_s == 6.0


async def test_template_errors_132001_and_132000(emu: Any, wa: CloudAPIClient) -> None:
    with pytest.raises(TemplateError) as info:
        await wa.send_template(USER, "no_such_template", "en_US")
    assert info.value.code == 132001 and info.value.http_status == 404
    emu.add_template("two_params", "Hi {{1}}, your code is {{2}}",
                     components=[{"type": "BODY", "text": "Hi {{1}}, your code is {{2}}",
                                  "example": {"body_text": [["Ana", "1234"]]}}])
    with pytest.raises(TemplateError) as info:
        await wa.send_template(USER, "two_params", "en_US", body=["Ana"])
    assert info.value.code == 132000 and info.value.http_status == 400
    assert emu.sent() == []


async def test_invalid_parameters_the_client_cannot_know(emu: Any) -> None:
    async with client_for(emu, phone_number_id="999999999") as wa:
        with pytest.raises(PermanentError) as info:
            await wa.send_text(USER, "hi")
    assert info.value.code == 100 and info.value.error_class is ErrorClass.PERMANENT
    assert info.value.fbtrace_id


async def test_server_errors(emu: Any, wa: CloudAPIClient) -> None:
    emu.faults.set(error_rates={131000: 1.0})
    with pytest.raises(RetryableError) as info:
        await wa.send_text(USER, "hi")
    assert info.value.code == 131000 and not info.value.outcome_unknown
    emu.faults.set(error_rates={}, server_error_rate=1.0)
    with pytest.raises(RetryableError) as info:
        await wa.send_text(USER, "hi")
    assert info.value.code is None and info.value.http_status == 502 and info.value.outcome_unknown


async def test_timeout_is_an_unknown_outcome() -> None:
    async with run_emulator(open_config(hang_seconds=2)) as emu, client_for(
        emu, timeouts=Timeouts(read=0.3, total=1)
    ) as wa:
        emu.faults.set(timeout_rate=1.0)
        with pytest.raises(SendTimeout) as info:
            await wa.send_text(USER, "hi")
        assert info.value.outcome_unknown
        emu.faults.clear()
        assert (await wa.send_text(USER, "after the fault")).message_id  # the pool recovered


async def test_dropped_connection_is_an_unknown_outcome(emu: Any, wa: CloudAPIClient) -> None:
    emu.faults.set(drop_rate=1.0)
    with pytest.raises(NetworkError) as info:
        await wa.send_text(USER, "hi")
    assert info.value.outcome_unknown and info.value.error_class is ErrorClass.RETRYABLE
    emu.faults.clear()
    assert (await wa.send_text(USER, "after the fault")).message_id


async def test_outside_window_fails_asynchronously_with_131047() -> None:
    async with run_emulator(open_config(enforce_window=True)) as emu, client_for(emu) as wa:
        result = await wa.send_text(USER, "nobody wrote to us")  # accepted: 200 + wamid
        msg = await emu.user(USER).wait_for_status(result.message_id, "failed")
    info = classify_async_error(msg.errors[0])
    assert info.code == 131047 and info.error_class is ErrorClass.OUTSIDE_WINDOW
    from waflow.cloudapi import async_error_exception

    assert isinstance(async_error_exception(msg.errors[0]), OutsideWindowError)


# -- media and templates -----------------------------------------------------------------------


def _multipart_missing() -> bool:
    """python-multipart (Starlette's form parser, which the emulator's upload uses) is not installed."""
    import importlib.util

    return all(importlib.util.find_spec(name) is None for name in ("python_multipart", "multipart"))


@pytest.mark.skipif(_multipart_missing(), reason="the emulator's upload endpoint needs python-multipart")
async def test_media_upload_url_download_delete(emu: Any, wa: CloudAPIClient) -> None:
    media_id = await wa.media.upload(PNG, "image/png; charset=binary", filename="a.png")
    info = await wa.media.get_url(media_id)
    assert info.mime_type == "image/png" and info.file_size == len(PNG) and info.id == media_id
    media = await wa.media.download(media_id)
    assert media.content == PNG and media.mime_type is not None and media.mime_type.startswith("image/png")
    with pytest.raises(MediaTooLargeError):
        await wa.media.download(media_id, max_bytes=100)
    with pytest.raises(MediaTooLargeError):
        await wa.media.download_url(info.url, max_bytes=100)
    assert await wa.media.delete(media_id)
    with pytest.raises(PermanentError):
        await wa.media.get_url(media_id)
    with pytest.raises(MessageValidationError, match="not a media type"):
        await wa.media.upload(b"x", "application/x-msdownload")
    assert "token" not in repr(media).lower()


async def test_template_management(emu: Any, wa: CloudAPIClient) -> None:
    for i in range(3):
        await wa.templates.create(TemplateDefinition(
            name=f"promo_{i}", language="en_US", category="MARKETING",
            components=[{"type": "BODY", "text": f"Offer {i}"}]))
    page = await wa.templates.list(limit=2)
    assert len(page.data) == 2 and page.after is not None
    names = [t.name async for t in wa.templates.iter_all(page_size=2)]
    assert sorted(n for n in names if n and n.startswith("promo_")) == ["promo_0", "promo_1", "promo_2"]
    only = await wa.templates.list(name="promo_1")
    assert [t.name for t in only.data] == ["promo_1"]
    template_id = only.data[0].id
    assert await wa.templates.status(template_id) in ("APPROVED", "PENDING")
    assert await wa.templates.delete("promo_1")
    remaining = [t.name async for t in wa.templates.iter_all()]
    assert "promo_1" not in remaining
    with pytest.raises(MessageValidationError, match="name"):
        await wa.templates.create(TemplateDefinition(name="Bad Name", language="en_US", category="UTILITY",
                                                     components=[{"type": "BODY", "text": "x"}]))
