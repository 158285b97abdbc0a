"""The platform's limits, checked locally: each message names the wire path and the limit."""

from __future__ import annotations

from typing import Any

import pytest

from waflow.cloudapi import (
    Interactive,
    ListRow,
    ListSection,
    MessageValidationError,
    SendMessage,
    Template,
    TemplateParameter,
    Text,
    validate_payload,
)
from waflow.cloudapi.models import build_payload


def payload(type_: str, content: Any, **kw: Any) -> dict[str, Any]:
    kw.setdefault("to", "34600111222")
    return build_payload(type_, content, **kw)


def buttons(*titles: str, ids: list[str] | None = None) -> dict[str, Any]:
    ids = ids or [f"b{i}" for i in range(len(titles))]
    return {"type": "button", "body": {"text": "Pick one"},
            "action": {"buttons": [{"type": "reply", "reply": {"id": i, "title": t}} for i, t in zip(ids, titles,
                                                                                                   strict=True)]}}


def a_list(sections: list[dict[str, Any]], **over: Any) -> dict[str, Any]:
    return {"type": "list", "body": {"text": "Menu"}, "action": {"button": "Open", "sections": sections}, **over}


def rows(n: int, prefix: str = "r") -> list[dict[str, Any]]:
    return [{"id": f"{prefix}{i}", "title": f"Row {i}"} for i in range(n)]


def check_fails(p: dict[str, Any], message: str) -> None:
    with pytest.raises(MessageValidationError) as info:
        validate_payload(p)
    assert str(info.value) == message


def test_button_title_message_names_path_and_limit() -> None:
    check_fails(payload("interactive", buttons("Yes", "x" * 23)),
                "interactive.action.buttons[1].reply.title: 23 characters, at most 20")


@pytest.mark.parametrize(
    ("p", "message"),
    [
        (payload("text", {"body": "x" * 4097}), "text.body: 4097 characters, at most 4096"),
        (payload("text", {"body": ""}), "text.body: must not be empty"),
        (payload("text", {}), "text.body: required"),
        (payload("text", {"body": "hi", "preview_url": "yes"}), "text.preview_url: must be true or false"),
        (payload("interactive", buttons()), "interactive.action.buttons: 0 buttons, must be 1 to 3"),
        (payload("interactive", buttons("a", "b", "c", "d")), "interactive.action.buttons: 4 buttons, must be 1 to 3"),
        (payload("interactive", buttons("Same", "Same")),
         "interactive.action.buttons[1].reply.title: 'Same' is used by another button, titles must be unique"),
        (payload("interactive", buttons("A", "B", ids=["x", "x"])),
         "interactive.action.buttons[1].reply.id: 'x' is used by another button, ids must be unique"),
        (payload("interactive", buttons("A", ids=["i" * 257])),
         "interactive.action.buttons[0].reply.id: 257 characters, at most 256"),
        (payload("interactive", {**buttons("A"), "body": {"text": "b" * 1025}}),
         "interactive.body.text: 1025 characters, at most 1024"),
        (payload("interactive", {**buttons("A"), "body": None}), "interactive.body: required"),
        (payload("interactive", {**buttons("A"), "footer": {"text": "f" * 61}}),
         "interactive.footer.text: 61 characters, at most 60"),
        (payload("interactive", {**buttons("A"), "header": {"type": "text", "text": "h" * 61}}),
         "interactive.header.text: 61 characters, at most 60"),
        (payload("interactive", {**buttons("A"), "header": {"type": "image", "image": {}}}),
         "interactive.header.image: needs exactly one of id (uploaded media) or link (URL)"),
        (payload("interactive", a_list([{"rows": rows(11)}])),
         "interactive.action.sections: more than 10 rows in total, at most 10"),
        (payload("interactive", a_list([{"title": "A", "rows": rows(6, "a")}, {"title": "B", "rows": rows(5, "b")}])),
         "interactive.action.sections: more than 10 rows in total, at most 10"),
        (payload("interactive", a_list([{"title": f"S{i}", "rows": rows(1, f"s{i}")} for i in range(11)])),
         "interactive.action.sections: 11 sections, must be 1 to 10"),
        (payload("interactive", a_list([{"rows": rows(1, "a")}, {"title": "B", "rows": rows(1, "b")}])),
         "interactive.action.sections[0].title: required"),
        (payload("interactive", a_list([{"title": "t" * 25, "rows": rows(1)}])),
         "interactive.action.sections[0].title: 25 characters, at most 24"),
        (payload("interactive", a_list([{"rows": [{"id": "a", "title": "t" * 25}]}])),
         "interactive.action.sections[0].rows[0].title: 25 characters, at most 24"),
        (payload("interactive", a_list([{"rows": [{"id": "a", "title": "t", "description": "d" * 73}]}])),
         "interactive.action.sections[0].rows[0].description: 73 characters, at most 72"),
        (payload("interactive", a_list([{"rows": [{"id": "i" * 201, "title": "t"}]}])),
         "interactive.action.sections[0].rows[0].id: 201 characters, at most 200"),
        (payload("interactive", a_list([{"rows": [{"id": "a", "title": "t"}, {"id": "a", "title": "u"}]}])),
         "interactive.action.sections[0].rows[1].id: 'a' is used by another row, row ids must be unique"),
        (payload("interactive", {**a_list([{"rows": rows(1)}]), "action": {"button": "b" * 21, "sections": []}}),
         "interactive.action.button: 21 characters, at most 20"),
        (payload("interactive", {**a_list([{"rows": rows(1)}]), "header": {"type": "image", "image": {"id": "1"}}}),
         "interactive.header.type: 'image' is not allowed for list, use one of ['text']"),
        (payload("interactive", a_list([{"rows": rows(1)}], body={"text": "b" * 4097})),
         "interactive.body.text: 4097 characters, at most 4096"),
        (payload("interactive", Interactive.cta_url("Go", "d" * 21, "https://x.example").wire()),
         "interactive.action.parameters.display_text: 21 characters, at most 20"),
        (payload("interactive", Interactive.cta_url("Go", "Open", "http://x.example").wire()),
         "interactive.action.parameters.url: must be an https:// URL"),
        (payload("interactive", {"type": "location_request_message", "body": {"text": "Where?"},
                                 "action": {"name": "nope"}}),
         "interactive.action.name: must be 'send_location', got 'nope'"),
        (payload("image", {"id": "1", "link": "https://x.example/a.jpg"}),
         "image: needs exactly one of id (uploaded media) or link (URL)"),
        (payload("image", {}), "image: needs exactly one of id (uploaded media) or link (URL)"),
        (payload("image", {"id": "1", "caption": "c" * 1025}), "image.caption: 1025 characters, at most 1024"),
        (payload("sticker", {"id": "1", "caption": "no"}), "sticker.caption: not allowed for this media type"),
        (payload("audio", {"id": "1", "caption": "no"}), "audio.caption: not allowed for this media type"),
        (payload("document", {"link": "ftp://x/a.pdf"}), "document.link: must be an http(s):// URL"),
        (payload("location", {"latitude": 91, "longitude": 0}),
         "location.latitude: 91.0 is out of range, must be between -90 and 90"),
        (payload("location", {"latitude": 0, "longitude": -180.5}),
         "location.longitude: -180.5 is out of range, must be between -180 and 180"),
        (payload("location", {"latitude": "north", "longitude": 0}),
         "location.latitude: must be a number, got 'north'"),
        (payload("reaction", {"emoji": "👍"}), "reaction.message_id: required"),
        (payload("reaction", {"message_id": "wamid.X", "emoji": "👍"}, reply_to="wamid.Y"),
         "context: a reaction cannot quote a message"),
        (payload("contacts", []), "contacts: needs at least one contact"),
        (payload("contacts", [{"name": {}}]), "contacts[0].name.formatted_name: required"),
        (payload("text", {"body": "hi"}, biz_opaque_callback_data="x" * 513),
         "biz_opaque_callback_data: 513 characters, at most 512"),
        (payload("text", {"body": "hi"}, to=None), "to: give exactly one of to (phone number) or recipient "
                                                   "(business-scoped user id)"),
        (payload("text", {"body": "hi"}, recipient="US.1"), "to: give exactly one of to (phone number) or "
                                                            "recipient (business-scoped user id)"),
        (payload("carrier_pigeon", {}), "type: unknown message type 'carrier_pigeon', use one of ['audio', "
                                        "'contacts', 'document', 'image', 'interactive', 'location', 'reaction', "
                                        "'sticker', 'template', 'text', 'video']"),
        (payload("template", {"name": "t", "language": {"code": "en"},
                              "components": [{"type": "body", "parameters": [
                                  {"type": "text", "text": "a", "parameter_name": "x"},
                                  {"type": "text", "text": "b"}]}]}),
         "template.components[0].parameters: mixes named (parameter_name) and positional parameters"),
        (payload("template", {"name": "t", "language": {"code": "en"},
                              "components": [{"type": "body", "parameters": [{"type": "currency", "currency": {
                                  "fallback_value": "$1", "code": "USD", "amount_1000": "1000"}}]}]}),
         "template.components[0].parameters[0].currency.amount_1000: must be an integer (amount × 1000)"),
        (payload("template", {"name": "t", "language": {"code": "en"},
                              "components": [{"type": "button", "sub_type": "quick_reply", "parameters": []}]}),
         "template.components[0].index: required for a button component"),
        (payload("template", {"name": "t", "language": {}}), "template.language.code: required"),
        (payload("template", {"name": "t", "language": {"code": "en"},
                              "components": [{"type": "header", "parameters": [{"type": "text", "text": "h" * 61}]}]}),
         "template.components[0].parameters[0].text: 61 characters, at most 60"),
        (payload("template", {"name": "t", "language": {"code": "en"},
                              "components": [{"type": "body", "parameters": [{"type": "date_time"}]}]}),
         "template.components[0].parameters[0].date_time: required for a date_time parameter"),
    ],
)
def test_limits(p: dict[str, Any], message: str) -> None:
    check_fails(p, message)


@pytest.mark.parametrize(
    "p",
    [
        payload("text", {"body": "x" * 4096, "preview_url": True}),
        payload("text", {"body": "hi"}, to=None, recipient="US.13491208655302741918"),
        payload("text", {"body": "hi"}, reply_to="wamid.X", biz_opaque_callback_data="o" * 512),
        payload("interactive", buttons("a" * 20, "b", "c", ids=["i" * 256, "j", "k"])),
        payload("interactive", a_list([{"title": "A", "rows": rows(5, "a")}, {"title": "B", "rows": rows(5, "b")}])),
        payload("interactive", a_list([{"rows": [{"id": "i" * 200, "title": "t" * 24, "description": "d" * 72}]}],
                                      body={"text": "b" * 4096})),
        payload("interactive", Interactive.location_request("Where are you?").wire()),
        payload("interactive", Interactive.cta_url("Go", "d" * 20, "https://x.example/path").wire()),
        payload("image", {"link": "https://x.example/a.jpg", "caption": "c" * 1024}),
        payload("audio", {"id": "123", "voice": True}),
        payload("document", {"id": "123", "filename": "invoice.pdf", "caption": "Your invoice"}),
        payload("sticker", {"id": "123"}),
        payload("location", {"latitude": -90, "longitude": 180, "name": "Pole"}),
        payload("location", {"latitude": "37.44", "longitude": "-122.16"}),
        payload("reaction", {"message_id": "wamid.X", "emoji": ""}),
        payload("contacts", [{"name": {"formatted_name": "Ana"}, "phones": [{"phone": "+34600", "type": "CELL"}]}]),
        payload("template", Template.build("order", "en_US", body=["Ana", "42"],
                                          buttons=[Template.quick_reply(0, "CANCEL"), Template.url_button(1, "abc"),
                                                   Template.copy_code(2, "SAVE10")]).wire()),
        payload("template", Template.build("order", "en_US", body={"name": "Ana"}).wire()),
        payload("template", Template.build("order", "en_US", body=[
            TemplateParameter(type="currency", currency={"fallback_value": "$1", "code": "USD",  # type: ignore[arg-type]
                                                         "amount_1000": 1000}),
            TemplateParameter(type="date_time", date_time={"fallback_value": "Aug 5"}),  # type: ignore[arg-type]
        ], header=[TemplateParameter(type="image", image={"link": "https://x.example/i.png"})]).wire()),  # type: ignore[arg-type]
        # Interactive types waflow does not model in detail pass through to Graph.
        payload("interactive", {"type": "flow", "body": {"text": "Book"},
                                "action": {"name": "flow", "parameters": {"flow_id": "1", "flow_cta": "Go"}}}),
    ],
)
def test_valid_payloads_pass(p: dict[str, Any]) -> None:
    validate_payload(p)


def test_typed_models_serialise_to_the_wire_shape() -> None:
    m = SendMessage(
        to="34600111222",
        content=Interactive.list_message("Menu", "Open", [ListSection(title="Mains", rows=[
            ListRow(id="1", title="Paella", description="Valencian")])], header="Hi", footer="Bye"),
        reply_to="wamid.Q",
        biz_opaque_callback_data="outbox:42",
    )
    assert m.wire() == {
        "messaging_product": "whatsapp", "recipient_type": "individual", "to": "34600111222",
        "context": {"message_id": "wamid.Q"}, "biz_opaque_callback_data": "outbox:42", "type": "interactive",
        "interactive": {"type": "list", "header": {"type": "text", "text": "Hi"}, "body": {"text": "Menu"},
                        "footer": {"text": "Bye"},
                        "action": {"button": "Open", "sections": [{"title": "Mains", "rows": [
                            {"id": "1", "title": "Paella", "description": "Valencian"}]}]}},
    }
    validate_payload(m.wire())


def test_send_message_needs_exactly_one_recipient() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        SendMessage(content=Text(body="hi"))
    with pytest.raises(ValueError, match="exactly one"):
        SendMessage(to="1", recipient="US.1", content=Text(body="hi"))


def test_validation_error_is_a_value_error_with_path() -> None:
    with pytest.raises(ValueError) as info:
        validate_payload(payload("text", {"body": ""}))
    assert isinstance(info.value, MessageValidationError)
    assert info.value.path == "text.body"
