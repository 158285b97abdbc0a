"""`CloudAPIClient`: send messages, mark them read, and reach the media and template APIs.

Every send is checked against the platform's limits (`validation.py`) before any HTTP call,
serialised once with orjson, and answered with a typed `SendResult` or a typed exception.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, ParamSpec

import httpx
import pydantic

from waflow.canonical import OutboundMessage
from waflow.cloudapi.errors import SCOPE_MESSAGING
from waflow.cloudapi.exceptions import MessageValidationError, UnexpectedResponseError, error_info
from waflow.cloudapi.media import DEFAULT_MAX_DOWNLOAD, MediaAPI
from waflow.cloudapi.models import (
    Audio,
    Contact,
    Contacts,
    Content,
    Document,
    Image,
    Interactive,
    InteractiveHeader,
    ListRow,
    ListSection,
    Location,
    Reaction,
    SendMessage,
    SendResult,
    Sticker,
    Template,
    TemplateComponent,
    TemplateParameter,
    Text,
    Video,
    build_payload,
    content_wire,
)
from waflow.cloudapi.templates import TemplatesAPI
from waflow.cloudapi.tokens import TokenFunc, TokenProvider, as_token_provider
from waflow.cloudapi.transport import DEFAULT_API_VERSION, DEFAULT_BASE_URL, GraphTransport, Timeouts
from waflow.cloudapi.validation import validate_mark_read, validate_payload


class UserId(str):
    """A business-scoped user id (BSUID, e.g. `US.1349...`): sent as `recipient` instead of `to`."""

    __slots__ = ()


Recipient = str | UserId
ButtonsSpec = Sequence[tuple[str, str]] | Mapping[str, str]
SectionsSpec = Sequence[ListSection] | Mapping[str, Sequence[tuple[str, str] | tuple[str, str, str]]]


P = ParamSpec("P")


def _model_errors(
    type_name: str,
) -> Callable[[Callable[P, Awaitable[SendResult]]], Callable[P, Awaitable[SendResult]]]:
    """Report a bad argument to a typed send method (caught by pydantic while building the model)
    as a `MessageValidationError` naming the wire path, like every other local refusal."""

    def decorate(method: Callable[P, Awaitable[SendResult]]) -> Callable[P, Awaitable[SendResult]]:
        @functools.wraps(method)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> SendResult:
            try:
                built = method(*args, **kwargs)
            except pydantic.ValidationError as exc:
                raise _from_pydantic(type_name, exc) from None
            return await built

        return wrapper

    return decorate


def _from_pydantic(type_name: str, exc: pydantic.ValidationError) -> MessageValidationError:
    first = exc.errors()[0]
    path = type_name
    for part in first["loc"]:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return MessageValidationError(path, first["msg"])


def _media_ref(media: str) -> dict[str, str]:
    """A media argument is a link when it is a URL, else an uploaded media id."""
    return {"link": media} if media.startswith(("https://", "http://")) else {"id": media}


class CloudAPIClient:
    """Async client for one business phone number on the WhatsApp Cloud API.

    ```python
    async with CloudAPIClient(phone_number_id="1234", token=EnvTokenProvider()) as wa:
        result = await wa.send_text("34600111222", "hello")
        result.message_id  # wamid...
    ```
    """

    def __init__(
        self,
        *,
        phone_number_id: str,
        token: str | TokenProvider | TokenFunc,
        waba_id: str | None = None,
        base_url: str = DEFAULT_BASE_URL,
        api_version: str = DEFAULT_API_VERSION,
        timeouts: Timeouts | None = None,
        max_connections: int = 100,
        max_download_bytes: int = DEFAULT_MAX_DOWNLOAD,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        self.phone_number_id = phone_number_id
        self.waba_id = waba_id
        self._transport = GraphTransport(
            as_token_provider(token),
            base_url=base_url,
            api_version=api_version,
            timeouts=timeouts,
            max_connections=max_connections,
            http_client=http_client,
        )
        self._messages_url = self._transport.url(f"{phone_number_id}/messages")
        self.media = MediaAPI(self._transport, phone_number_id, max_download_bytes=max_download_bytes)
        self.templates = TemplatesAPI(self._transport, waba_id)

    @classmethod
    def from_env(cls, prefix: str = "WHATSAPP_", **kwargs: Any) -> CloudAPIClient:
        """Build from `{prefix}PHONE_NUMBER_ID`, `{prefix}WABA_ID`, `{prefix}ACCESS_TOKEN` (read lazily)."""
        from waflow.cloudapi.tokens import EnvTokenProvider

        kwargs.setdefault("phone_number_id", os.environ[f"{prefix}PHONE_NUMBER_ID"])
        kwargs.setdefault("waba_id", os.environ.get(f"{prefix}WABA_ID"))
        kwargs.setdefault("token", EnvTokenProvider(f"{prefix}ACCESS_TOKEN"))
        if f"{prefix}BASE_URL" in os.environ:
            kwargs.setdefault("base_url", os.environ[f"{prefix}BASE_URL"])
        return cls(**kwargs)

    def __repr__(self) -> str:
        return (
            f"CloudAPIClient(phone_number_id={self.phone_number_id!r}, waba_id={self.waba_id!r}, "
            f"root={self._transport.root!r}, token_provider={self._transport._provider!r})"
        )

    async def __aenter__(self) -> CloudAPIClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._transport.aclose()

    @property
    def transport(self) -> GraphTransport:
        return self._transport

    # -- the generic send ----------------------------------------------------------------------

    async def send(
        self,
        message: SendMessage | OutboundMessage | Mapping[str, Any],
        *,
        biz_opaque_callback_data: str | None = None,
    ) -> SendResult:
        """Send one message: a typed `SendMessage`, a canonical `OutboundMessage` (type + Cloud-API-shaped
        content; the outbox's path), or a complete request body. Limits are checked before any HTTP call.

        For `OutboundMessage` of type `contacts`, `content` is `{"contacts": [...]}`.
        """
        if isinstance(message, OutboundMessage):
            content: Any = message.content
            if message.type == "contacts" and isinstance(content, Mapping) and "contacts" in content:
                content = content["contacts"]
            payload = build_payload(
                message.type,
                content,
                to=message.to,
                recipient=message.recipient,
                reply_to=message.reply_to,
                biz_opaque_callback_data=biz_opaque_callback_data,
            )
        elif isinstance(message, SendMessage):
            payload = message.wire()
            if biz_opaque_callback_data is not None:
                payload["biz_opaque_callback_data"] = biz_opaque_callback_data
        else:
            payload = dict(message)
            payload.setdefault("messaging_product", "whatsapp")
            if biz_opaque_callback_data is not None:
                payload["biz_opaque_callback_data"] = biz_opaque_callback_data
        validate_payload(payload)
        return await self._post_message(payload)

    async def send_content(
        self,
        to: Recipient,
        content: Content,
        *,
        reply_to: str | None = None,
        biz_opaque_callback_data: str | None = None,
    ) -> SendResult:
        """Send a typed content object (`Text(...)`, `Interactive.reply_buttons(...)`, ...) to one user."""
        is_user_id = isinstance(to, UserId)
        payload = build_payload(
            content.TYPE,
            content_wire(content),
            to=None if is_user_id else to,
            recipient=to if is_user_id else None,
            reply_to=reply_to,
            biz_opaque_callback_data=biz_opaque_callback_data,
        )
        validate_payload(payload)
        return await self._post_message(payload)

    async def _post_message(self, payload: dict[str, Any]) -> SendResult:
        body = await self._transport.request_json("POST", self._messages_url, body=payload, scope=SCOPE_MESSAGING)
        try:
            return SendResult.model_validate(body)
        except ValueError:
            exc = UnexpectedResponseError(
                error_info(None, http_status=200, message="the send answer carries no message id")
            )
            # Graph said 200: the message was probably accepted, but we cannot tell which id it got.
            exc.outcome_unknown = True
            raise exc from None

    # -- one method per type -------------------------------------------------------------------
    # Each builds its typed model and hands back the send coroutine; `_model_errors` makes the
    # public method async and turns a pydantic type error into a `MessageValidationError`.

    @_model_errors("text")
    def send_text(
        self, to: Recipient, body: str, *, preview_url: bool | None = None, reply_to: str | None = None,
        biz_opaque_callback_data: str | None = None,
    ) -> Awaitable[SendResult]:
        return self.send_content(
            to, Text(body=body, preview_url=preview_url), reply_to=reply_to,
            biz_opaque_callback_data=biz_opaque_callback_data,
        )

    @_model_errors("image")
    def send_image(
        self, to: Recipient, media: str, *, caption: str | None = None, reply_to: str | None = None,
        biz_opaque_callback_data: str | None = None,
    ) -> Awaitable[SendResult]:
        """`media`: an uploaded media id, or an https:// link."""
        return self.send_content(
            to, Image(**_media_ref(media), caption=caption), reply_to=reply_to,
            biz_opaque_callback_data=biz_opaque_callback_data,
        )

    @_model_errors("video")
    def send_video(
        self, to: Recipient, media: str, *, caption: str | None = None, reply_to: str | None = None,
        biz_opaque_callback_data: str | None = None,
    ) -> Awaitable[SendResult]:
        return self.send_content(
            to, Video(**_media_ref(media), caption=caption), reply_to=reply_to,
            biz_opaque_callback_data=biz_opaque_callback_data,
        )

    @_model_errors("audio")
    def send_audio(
        self, to: Recipient, media: str, *, voice: bool | None = None, reply_to: str | None = None,
        biz_opaque_callback_data: str | None = None,
    ) -> Awaitable[SendResult]:
        """`voice=True` sends a voice note (OGG/OPUS)."""
        return self.send_content(
            to, Audio(**_media_ref(media), voice=voice), reply_to=reply_to,
            biz_opaque_callback_data=biz_opaque_callback_data,
        )

    @_model_errors("document")
    def send_document(
        self, to: Recipient, media: str, *, caption: str | None = None, filename: str | None = None,
        reply_to: str | None = None, biz_opaque_callback_data: str | None = None,
    ) -> Awaitable[SendResult]:
        return self.send_content(
            to, Document(**_media_ref(media), caption=caption, filename=filename), reply_to=reply_to,
            biz_opaque_callback_data=biz_opaque_callback_data,
        )

    @_model_errors("sticker")
    def send_sticker(
        self, to: Recipient, media: str, *, reply_to: str | None = None, biz_opaque_callback_data: str | None = None,
    ) -> Awaitable[SendResult]:
        return self.send_content(
            to, Sticker(**_media_ref(media)), reply_to=reply_to, biz_opaque_callback_data=biz_opaque_callback_data
        )

    @_model_errors("location")
    def send_location(
        self, to: Recipient, latitude: float, longitude: float, *, name: str | None = None,
        address: str | None = None, reply_to: str | None = None, biz_opaque_callback_data: str | None = None,
    ) -> Awaitable[SendResult]:
        return self.send_content(
            to, Location(latitude=latitude, longitude=longitude, name=name, address=address),
            reply_to=reply_to, biz_opaque_callback_data=biz_opaque_callback_data,
        )

    @_model_errors("contacts")
    def send_contacts(
        self, to: Recipient, contacts: Sequence[Contact], *, reply_to: str | None = None,
        biz_opaque_callback_data: str | None = None,
    ) -> Awaitable[SendResult]:
        return self.send_content(
            to, Contacts(contacts=list(contacts)), reply_to=reply_to, biz_opaque_callback_data=biz_opaque_callback_data
        )

    @_model_errors("reaction")
    def send_reaction(
        self, to: Recipient, message_id: str, emoji: str, *, biz_opaque_callback_data: str | None = None
    ) -> Awaitable[SendResult]:
        """React to `message_id` with `emoji` (`""` removes the reaction)."""
        return self.send_content(
            to, Reaction(message_id=message_id, emoji=emoji), biz_opaque_callback_data=biz_opaque_callback_data
        )

    @_model_errors("interactive")
    def send_buttons(
        self, to: Recipient, body: str, buttons: ButtonsSpec, *, header: str | InteractiveHeader | None = None,
        footer: str | None = None, reply_to: str | None = None, biz_opaque_callback_data: str | None = None,
    ) -> Awaitable[SendResult]:
        """Reply buttons from `(id, title)` pairs or an `{id: title}` mapping (1–3 buttons)."""
        pairs = list(buttons.items()) if isinstance(buttons, Mapping) else list(buttons)
        return self.send_content(
            to, Interactive.reply_buttons(body, pairs, header=header, footer=footer),
            reply_to=reply_to, biz_opaque_callback_data=biz_opaque_callback_data,
        )

    @_model_errors("interactive")
    def send_list(
        self, to: Recipient, body: str, button: str, sections: SectionsSpec, *, header: str | None = None,
        footer: str | None = None, reply_to: str | None = None, biz_opaque_callback_data: str | None = None,
    ) -> Awaitable[SendResult]:
        """A list message. `sections`: `ListSection`s, or `{section title: [(id, title[, description]), ...]}`."""
        if isinstance(sections, Mapping):
            built = [
                ListSection(
                    title=title or None,
                    rows=[ListRow(id=r[0], title=r[1], description=r[2] if len(r) > 2 else None) for r in rows],
                )
                for title, rows in sections.items()
            ]
        else:
            built = list(sections)
        return self.send_content(
            to, Interactive.list_message(body, button, built, header=header, footer=footer),
            reply_to=reply_to, biz_opaque_callback_data=biz_opaque_callback_data,
        )

    @_model_errors("interactive")
    def send_cta_url(
        self, to: Recipient, body: str, display_text: str, url: str, *, header: str | InteractiveHeader | None = None,
        footer: str | None = None, reply_to: str | None = None, biz_opaque_callback_data: str | None = None,
    ) -> Awaitable[SendResult]:
        return self.send_content(
            to, Interactive.cta_url(body, display_text, url, header=header, footer=footer),
            reply_to=reply_to, biz_opaque_callback_data=biz_opaque_callback_data,
        )

    @_model_errors("interactive")
    def send_location_request(
        self, to: Recipient, body: str, *, reply_to: str | None = None, biz_opaque_callback_data: str | None = None,
    ) -> Awaitable[SendResult]:
        return self.send_content(
            to, Interactive.location_request(body), reply_to=reply_to,
            biz_opaque_callback_data=biz_opaque_callback_data,
        )

    @_model_errors("template")
    def send_template(
        self, to: Recipient, name: str | Template, language: str | None = None, *,
        body: Sequence[str] | Mapping[str, str] | Sequence[TemplateParameter] | None = None,
        header: Sequence[TemplateParameter] | None = None,
        buttons: Sequence[TemplateComponent] | None = None,
        reply_to: str | None = None, biz_opaque_callback_data: str | None = None,
    ) -> Awaitable[SendResult]:
        """A template by name + language with body parameters (positional list or `{name: value}`),
        header parameters and button components (`Template.quick_reply(0, "X")`, ...), or a `Template`."""
        if isinstance(name, Template):
            template = name
        else:
            if language is None:
                raise TypeError("send_template needs a language code with a template name")
            body_arg: Any = dict(body) if isinstance(body, Mapping) else (list(body) if body is not None else None)
            template = Template.build(
                name, language, body=body_arg, header=list(header) if header else None,
                buttons=list(buttons) if buttons else None,
            )
        return self.send_content(
            to, template, reply_to=reply_to, biz_opaque_callback_data=biz_opaque_callback_data
        )

    # -- read receipts and typing --------------------------------------------------------------

    async def mark_read(self, message_id: str, *, typing: bool = False) -> bool:
        """Mark an inbound message (and the ones before it) read; `typing=True` also shows the
        typing indicator until the next reply or 25 s."""
        payload: dict[str, Any] = {"messaging_product": "whatsapp", "status": "read", "message_id": message_id}
        if typing:
            payload["typing_indicator"] = {"type": "text"}
        validate_mark_read(payload)
        body = await self._transport.request_json("POST", self._messages_url, body=payload, scope=SCOPE_MESSAGING)
        return bool(isinstance(body, Mapping) and body.get("success"))

    async def send_typing(self, message_id: str) -> bool:
        return await self.mark_read(message_id, typing=True)

