"""The emulator's behaviour, independent of HTTP: accept sends, emit statuses, inject user messages."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from waflow.cloudapi.errors import spec_for

from .clock import Clock
from .config import EmulatorConfig
from .faults import Faults
from .graph_errors import GraphError, async_error
from .ids import wamid as new_wamid
from .limits import Limits
from .media import MediaStore
from .state import EmulatorState, OutboundMessage, UserState
from .templates import Template, TemplateRegistry
from .tokens import TokenStore
from .validation import SendRequest, validate_send
from .webhooks import Update, WebhookDispatcher

log = logging.getLogger("waflow.emulator")


class Emulator:
    """One emulated WhatsApp business number (and its WABA, app and users)."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.clock = Clock()
        self.state = EmulatorState()
        self.tokens = TokenStore(config, self.clock.now)
        self.limits = Limits(self.clock.now)
        self.faults = Faults(config.seed)
        self.media = MediaStore()
        self.templates = TemplateRegistry()
        self.webhooks = WebhookDispatcher(config, self.clock.now, config.seed)
        self._country_code = _country_code(config.display_phone_number)
        for seed in config.templates:
            self.templates.create(seed.waba_id or config.waba_id, seed.model_dump(exclude={"waba_id"}),
                                  status=seed.status)

    def __repr__(self) -> str:
        return f"Emulator(phone_number_id={self.config.phone_number_id!r}, waba_id={self.config.waba_id!r})"

    async def start(self) -> None:
        await self.webhooks.start()

    async def stop(self) -> None:
        await self.webhooks.stop()

    # -- sends -----------------------------------------------------------------------------
    def send(self, phone_number_id: str, body: Any, *, forced_failure: int | None = None) -> dict[str, Any]:
        """Everything `POST /{phone}/messages` does after auth and routing. Raises GraphError.

        `forced_failure`: an injected asynchronous error code; the send is accepted, then fails.
        """
        cfg = self.config
        req = validate_send(body, default_country_code=self._country_code, business_number=cfg.display_phone_number)
        if req.kind == "read":
            self.state.read_receipts.append(req.read_message_id or "")
            return {"success": True}
        if req.kind == "typing":
            self.state.typing_indicators.append(req.read_message_id or "")
            return {"success": True}

        template: Template | None = None
        if req.type == "template":
            content = req.content
            template = self.templates.check_send(cfg.waba_id, content["name"], content["language"]["code"],
                                                 req.template_params)
        if not self.limits.take_throughput(phone_number_id, cfg.throughput_mps):
            raise GraphError(130429, subcode=2494055)
        user = self._recipient(req)
        if not self.limits.take_pair(phone_number_id, user.wa_id, cfg.pair_rate_per_s, cfg.pair_burst):
            raise GraphError(131056)

        msg = OutboundMessage(
            wamid=new_wamid(user.wa_id),
            seq=self.state.next_seq(),
            wa_id=user.wa_id,
            user_id=user.user_id,
            to_input=req.to_input or "",
            type=req.type,
            content=req.content,
            context_id=req.context_id,
            callback_data=req.callback_data,
            accepted_at=self.clock.now(),
            template_category=template.category.lower() if template else None,
        )
        self.state.record(msg)
        failure = (forced_failure, None) if forced_failure else self._async_failure(req, user, msg)
        self._schedule_statuses(msg, failure)
        contact: dict[str, str] = {"input": req.to_input or "", "wa_id": user.wa_id}
        if req.user_id is not None:
            contact = {"input": req.to_input or "", "user_id": user.user_id}
        answer: dict[str, Any] = {"messaging_product": "whatsapp", "contacts": [contact],
                                  "messages": [{"id": msg.wamid}]}
        if template is not None and template.category in ("MARKETING", "UTILITY"):
            answer["messages"][0]["message_status"] = "accepted"
        return answer

    def _recipient(self, req: SendRequest) -> UserState:
        if req.wa_id is not None:
            return self.state.user(req.wa_id)
        assert req.user_id is not None
        user = self.state.user_by_bsuid(req.user_id)
        if user is None:
            # An id we never issued: accepted like Meta does, then undeliverable.
            user = self.state.user("0" + str(abs(hash(req.user_id)) % 10**12))
        return user

    def _async_failure(self, req: SendRequest, user: UserState, msg: OutboundMessage) -> tuple[int, str | None] | None:
        if req.user_id is not None and self.state.user_by_bsuid(req.user_id) is None:
            return (131026, None)
        if req.type in ("image", "video", "audio", "document", "sticker"):
            media_id = req.content.get("id")
            if media_id is not None and self.media.get(media_id) is None:
                return (131053, f"Media id {media_id} not found.")
        if req.type == "reaction":
            target = req.content.get("message_id")
            if target not in self.state.inbound_ids:
                return (131009, "Reaction target message is unknown.")
        if (
            self.config.enforce_window
            and req.type != "template"
            and not self.window_open(user)
        ):
            return (131047, None)
        return None

    def window_open(self, user: UserState) -> bool:
        last = user.last_inbound_at
        return last is not None and self.clock.now() - last < self.config.window_hours * 3600

    # -- statuses --------------------------------------------------------------------------
    def _schedule_statuses(self, msg: OutboundMessage, failure: tuple[int, str | None] | None) -> None:
        loop = asyncio.get_running_loop()
        d = self.config.status_delays
        if failure is not None:
            code, details = failure
            loop.call_later(d.sent, self.emit_status, msg, "failed", [async_error(code, details)])
            return
        loop.call_later(d.sent, self.emit_status, msg, "sent")
        if msg.type == "reaction":
            return
        loop.call_later(d.delivered, self.emit_status, msg, "delivered")
        if d.read is not None:
            loop.call_later(d.read, self.emit_status, msg, "read")

    def emit_status(self, msg: OutboundMessage, status: str, errors: list[dict[str, Any]] | None = None) -> None:
        msg.advance(status)
        if errors:
            msg.errors = errors
        item: dict[str, Any] = {
            "id": msg.wamid,
            "status": status,
            "timestamp": str(int(self.clock.now())),
            "recipient_id": msg.wa_id,
        }
        if msg.callback_data is not None:
            item["biz_opaque_callback_data"] = msg.callback_data
        if errors:
            item["errors"] = errors
        elif status in ("sent", "delivered"):
            item["pricing"] = self._pricing(msg)
        contacts = None
        if self.config.status_contacts:
            user = self.state.users[msg.wa_id]
            contacts = [{"wa_id": user.wa_id, "user_id": user.user_id}]
        self.webhooks.submit(Update("messages", "statuses", item, contacts))

    def _pricing(self, msg: OutboundMessage) -> dict[str, Any]:
        if msg.template_category is None:
            return {"billable": False, "pricing_model": "PMP", "type": "free_customer_service", "category": "service"}
        user = self.state.users[msg.wa_id]
        if msg.template_category == "utility" and self.window_open(user):
            return {"billable": False, "pricing_model": "PMP", "type": "free_customer_service",
                    "category": "utility"}
        return {"billable": True, "pricing_model": "PMP", "type": "regular", "category": msg.template_category}

    def fail_message(self, wamid: str, code: int, details: str | None = None) -> None:
        """Control plane: make an accepted message fail now with `code`."""
        self.emit_status(self.state.outbound[wamid], "failed", [async_error(code, details)])

    # -- inbound ---------------------------------------------------------------------------
    def inject(self, user: UserState, message: dict[str, Any]) -> tuple[str, asyncio.Future[bool]]:
        """A user sends `message` (type + type object, optional context/referral): signed webhook follows."""
        msg = dict(message)
        wamid = msg.get("id") or new_wamid(user.wa_id)
        msg = {"from": user.wa_id, "id": wamid, "timestamp": str(int(self.clock.now())), **msg}
        msg["id"] = wamid
        self.state.inbound_ids.add(wamid)
        user.sent.append(msg)
        if msg.get("type") != "system":  # a number-change notice is not the user writing
            user.last_inbound_at = self.clock.now()
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self.webhooks.submit(Update("messages", "messages", msg, [user.contact()], done))
        return wamid, done

    # -- templates -------------------------------------------------------------------------
    def set_template_status(self, template_id: str, status: str, reason: str | None = None,
                            other_info: dict[str, str] | None = None) -> Template:
        """Move a template to `status` and emit message_template_status_update, as review would."""
        t = self.templates.set_status(template_id, status, reason)
        value: dict[str, Any] = {
            "event": t.status,
            "message_template_id": int(t.id),
            "message_template_name": t.name,
            "message_template_language": t.language,
            "reason": reason if reason is not None else ("NONE" if t.status != "REJECTED" else "INVALID_FORMAT"),
            "message_template_category": t.category,
        }
        if other_info:
            value["other_info"] = other_info
        elif t.status == "PAUSED":
            value["other_info"] = {"title": "FIRST_PAUSE", "description": "Paused because of low quality."}
        elif t.status == "DISABLED":
            value["other_info"] = {"title": "DISABLED", "description": "Disabled because of repeated pauses."}
        self.webhooks.submit(Update("message_template_status_update", "", value))
        return t

    def error_for_fault(self, code: int) -> GraphError | None:
        """A synchronous error for an injected code; None when Meta reports that code asynchronously."""
        spec = spec_for(code)
        if spec is not None and spec.asynchronous:
            return None
        return GraphError(code)


def _country_code(display_number: str) -> str:
    """The business number's calling code, used to complete local-format `to` numbers."""
    from .ids import _COUNTRIES

    for n in (3, 2, 1):
        if display_number[:n] in _COUNTRIES:
            return display_number[:n]
    return display_number[:2]
