"""An independent client: pywa 4.5 sends every type it supports to the emulator, and a pywa-based
receiver (signature check + update parsing) consumes the emulator's webhooks."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pywa_async import WhatsApp, types
from pywa_async.types import templates as tpl
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from waflow.emulator import EmulatorHandle, run_emulator, serve_asgi

from .conftest import APP_SECRET, VERIFY_TOKEN, make_config

USER = "34600111222"


class PywaReceiver:
    """A webhook endpoint built on pywa's own validator and update parser."""

    def __init__(self) -> None:
        self.wa = WhatsApp(phone_id="106540352242922", waba_id="102290129340398", app_secret=APP_SECRET,
                           verify_token=VERIFY_TOKEN, validate_updates=True, filter_updates=True)
        self.updates: list[Any] = []
        self.rejected = 0

        async def record(_: Any, update: Any) -> None:
            self.updates.append(update)

        for register in (self.wa.on_message, self.wa.on_callback_button, self.wa.on_callback_selection,
                         self.wa.on_message_status, self.wa.on_template_status_update, self.wa.on_flow_completion,
                         self.wa.on_phone_number_change):
            register()(record)

    def app(self) -> Starlette:
        async def post(request: Request) -> Response:
            body = await request.body()
            error = await self.wa.webhook_update_validator(body, request.headers.get("x-hub-signature-256"))
            if error:
                self.rejected += 1
                return PlainTextResponse(error[0], status_code=error[1])
            text, status = await self.wa.webhook_update_handler(body)
            return PlainTextResponse(text, status_code=status)

        async def get(request: Request) -> Response:
            ch, status = await self.wa.webhook_challenge_handler(request.query_params.get("hub.verify_token"),
                                                                 request.query_params.get("hub.challenge"))
            return PlainTextResponse(ch or "", status_code=status)

        return Starlette(routes=[Route("/wh", post, methods=["POST"]), Route("/wh", get)])

    def of(self, cls: type) -> list[Any]:
        return [u for u in self.updates if isinstance(u, cls)]


@pytest.fixture
async def pywa_env() -> AsyncIterator[tuple[EmulatorHandle, WhatsApp, PywaReceiver]]:
    receiver = PywaReceiver()
    async with serve_asgi(receiver.app()) as base:
        cfg = make_config(None)
        cfg.callback_url = base + "/wh"
        async with run_emulator(cfg) as emu:
            client = WhatsApp(phone_id=emu.config.phone_number_id, token=emu.config.access_token,
                              waba_id=emu.config.waba_id, api_version="23.0")
            # pywa hard-codes https://graph.facebook.com/v{version} on its httpx session; repoint it.
            client.api._session.base_url = emu.graph_url
            yield emu, client, receiver
            await client.api._session.aclose()


async def test_pywa_sends_every_type(pywa_env: tuple[EmulatorHandle, WhatsApp, PywaReceiver]) -> None:
    emu, wa, receiver = pywa_env
    user = emu.user(USER, name="Ana")
    inbound = await user.send_text("hola")
    jpeg = b"\xff\xd8\xff\xe0" + b"p" * 500
    media = await wa.upload_media(media=jpeg, mime_type="image/jpeg", filename="a.jpg")
    url = await wa.get_media_url(media.id)
    assert url.mime_type == "image/jpeg" and url.sha256 == hashlib.sha256(jpeg).hexdigest()
    assert await wa.get_media_bytes(url.url) == jpeg
    emu.add_template("order_update", "Hi {{1}}, order {{2}}", language="en_US")
    emu.add_template("named_hello", "Hi {{name}}", parameter_format="named")

    sent: list[Any] = [
        await wa.send_message(USER, "plain *text* https://x.io", preview_url=True, tracker="ob-1"),
        await wa.send_message(USER, "pick", header="Head", footer="Foot",
                              buttons=[types.Button(title="Yes", callback_data="y"),
                                       types.Button(title="No", callback_data="n")]),
        await wa.send_message(USER, "menu", buttons=types.SectionList(button_title="Open", sections=[
            types.Section(title="Main", rows=[types.SectionRow(title="One", callback_data="1", description="d"),
                                              types.SectionRow(title="Two", callback_data="2")])])),
        await wa.send_message(USER, "visit", buttons=types.URLButton(title="Open", url="https://x.io")),
        await wa.send_message(USER, "book", buttons=types.FlowButton(title="Book", flow_id="123",
                                                                     flow_action_screen="START")),
        await wa.send_image(USER, media.id, caption="by id"),
        await wa.send_image(USER, "https://x.io/a.jpg", caption="by link"),
        await wa.send_video(USER, "https://x.io/a.mp4", caption="v"),
        await wa.send_document(USER, "https://x.io/a.pdf", filename="a.pdf", caption="doc"),
        await wa.send_audio(USER, "https://x.io/a.mp3"),
        await wa.send_voice(USER, "https://x.io/a.ogg"),
        await wa.send_sticker(USER, "https://x.io/a.webp"),
        await wa.send_location(USER, latitude=40.4, longitude=-3.7, name="Sol", address="Madrid"),
        await wa.request_location(USER, "where?"),
        await wa.send_contact(USER, types.Contact(name=types.Contact.Name(formatted_name="Bo", first_name="Bo"),
                                                  phones=[types.Contact.Phone(phone="+1 555", type="CELL")])),
        await wa.send_product(USER, catalog_id="c1", sku="sku1", body="look"),
        await wa.send_products(USER, catalog_id="c1", title="Shop", body="picks", product_sections=[
            types.ProductsSection(title="S", skus=["a", "b"])]),
        await wa.send_catalog(USER, body="our catalog"),
        await wa.send_reaction(USER, emoji="👍", message_id=inbound),
        await wa.send_message(USER, "quoted", reply_to_message_id=inbound),
        await wa.send_template(USER, name="order_update", language=tpl.TemplateLanguage.ENGLISH_US,
                               params=[tpl.BodyText.params("Ana", "42")]),
        await wa.send_template(USER, name="named_hello", language=tpl.TemplateLanguage.ENGLISH_US,
                               params=[tpl.BodyText.params(name="Ana")]),
    ]
    ids = [s.id for s in sent]
    assert len(set(ids)) == len(ids)
    assert all(s.input == USER for s in sent)
    assert [m.wamid for m in user.received()] == ids
    assert (await wa.mark_message_as_read(inbound)).success
    assert (await wa.indicate_typing(inbound)).success
    assert await wa.delete_media(media.id)

    for wamid in ids:
        await user.wait_for_status(wamid, "sent")
    await emu.webhooks_idle()
    assert receiver.rejected == 0
    statuses = receiver.of(types.MessageStatus)
    assert {s.id for s in statuses} == set(ids)
    tracked = [s for s in statuses if s.id == ids[0]]
    assert {s.tracker for s in tracked} == {"ob-1"}
    assert {s.status for s in tracked} >= {types.MessageStatusType.SENT, types.MessageStatusType.DELIVERED}


async def test_pywa_errors_parse(pywa_env: tuple[EmulatorHandle, WhatsApp, PywaReceiver]) -> None:
    from pywa import errors

    emu, wa, _ = pywa_env
    with pytest.raises(errors.WhatsAppError) as e:
        await wa.send_message(USER, "x", buttons=[types.Button(title=str(i), callback_data=str(i)) for i in range(4)])
    assert e.value.code == 131009
    with pytest.raises(errors.TemplateNotExists):
        await wa.send_template(USER, name="missing", language=tpl.TemplateLanguage.ENGLISH_US)
    emu.expire_token()
    with pytest.raises(errors.WhatsAppError) as e:
        await wa.send_message(USER, "x")
    assert e.value.code == 190


async def test_pywa_parses_inbound_webhooks(pywa_env: tuple[EmulatorHandle, WhatsApp, PywaReceiver]) -> None:
    emu, wa, receiver = pywa_env
    assert await emu.verify_callback()
    user = emu.user(USER, name="Ana Ruíz")
    await user.send_text("¿qué tal? 😮")
    biz = (await wa.send_message(USER, "pick", buttons=[types.Button(title="Yes", callback_data="y")])).id
    await user.reply_button(to_message=biz, id="y", title="Yes")
    await user.reply_list(to_message=biz, id="row1", title="Row", description="d")
    await user.tap_template_button(to_message=biz, payload="CANCEL", text="Cancel")
    await user.send_image(caption="pic")
    await user.send_audio()
    await user.send_document()
    await user.send_sticker()
    await user.send_video()
    await user.send_location(1.0, 2.0)
    await user.send_contacts([{"name": {"formatted_name": "Bo"}, "phones": [{"phone": "+1", "wa_id": "1"}]}])
    await user.react(to_message=biz, emoji="👍")
    await user.reply_flow(to_message=biz, response={"flow_token": "t", "x": 1})
    await user.send_unsupported()
    await user.change_number("34600999888")
    tid = emu.add_template("pending_one", status="PENDING").id
    emu.set_template_status(tid, "APPROVED")
    emu.advance_clock(hours=30)
    late = (await wa.send_message(USER, "late")).id
    await emu.webhooks_idle()
    await user.wait_for_status(late, "failed")
    await emu.webhooks_idle()

    assert receiver.rejected == 0
    msgs = receiver.of(types.Message)
    assert msgs[0].text == "¿qué tal? 😮" and msgs[0].from_user.name == "Ana Ruíz"
    assert msgs[0].from_user.wa_id == USER and msgs[0].from_user.bsuid == user.user_id
    assert [m.type.value for m in msgs] == ["text", "image", "audio", "document", "sticker", "video",
                                           "location", "contacts", "reaction", "unsupported"]
    buttons = receiver.of(types.CallbackButton)
    # pywa files both interactive button replies and template quick-reply taps (`button`) as CallbackButton
    assert [(b.data, b.title) for b in buttons] == [("y", "Yes"), ("CANCEL", "Cancel")]
    assert receiver.of(types.CallbackSelection)[0].data == "row1"
    assert receiver.of(types.FlowCompletion)[0].token == "t"
    assert len(receiver.of(types.PhoneNumberChange)) == 1
    tsu = receiver.of(types.TemplateStatusUpdate)
    assert tsu and tsu[0].template_name == "pending_one"
    failed = [s for s in receiver.of(types.MessageStatus) if s.id == late]
    assert failed[-1].status == types.MessageStatusType.FAILED and failed[-1].error.code == 131047
