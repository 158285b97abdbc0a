"""A local stand-in for Meta's WhatsApp Cloud API, for tests, demos and load runs.

It validates sends like Meta, answers with Meta's shapes and error envelopes, enforces the
throughput / pair-rate limits and the 24 h window, stores media and templates, and POSTs signed
webhooks (statuses, user messages, template updates) to a callback URL. It imports nothing from
waflow except `waflow.cloudapi.errors`.

Tests::

    from waflow.emulator import EmulatorConfig, run_emulator

    async with run_emulator(EmulatorConfig(callback_url=url, app_secret="s3cret", verify_token="vt")) as emu:
        emu.base_url                      # "http://127.0.0.1:PORT"; Graph paths work with or without /vNN.0
        emu.config.phone_number_id, emu.config.waba_id, emu.config.access_token
        user = emu.user("34600111222", name="Ana")
        wamid = await user.send_text("hola")          # signed webhook delivered (attempted) to callback_url
        await user.reply_button(to_message=biz_wamid, id="yes", title="Yes")
        msgs = user.received()                        # what the business sent this user, in order
        await user.wait_for_received(3, timeout=5)
        emu.advance_clock(hours=25)                   # close the 24 h window without sleeping
        emu.faults.set(error_rates={131000: 0.1}, latency_ms=0)
        emu.sends_by_callback_data()                  # {"outbox-1": 1, ...}: accepted exactly once?

Handle (`EmulatorHandle`): `base_url`, `graph_url`, `config`, `faults`, `user()`, `sent()`, `message()`,
`sends_by_callback_data()`, `advance_clock()`, `expire_token()`, `rotate_token()`, `issue_token()` (a
`SYSTEM_USER` or `USER` token with a lifetime and scopes), `revoke_token()`, `token_record()`, `set_callback()`,
`webhook_modes()`, `webhook_attempts`, `webhooks_idle()`, `verify_callback()`, `add_template()`,
`set_template_status()`, and `emulator` (the whole `Emulator`).

User (`SimulatedUser`): `send_text`, `send_image|video|audio|document|sticker` (or `send_media`),
`send_location`, `send_contacts`, `reply_button`, `reply_list`, `reply_flow`, `tap_template_button`,
`react`, `send_order`, `send_unsupported`, `change_number`, generic `send(message_obj)`; each takes
`reply_to=`, `referral=` (see `inbound.referral()`), `forwarded=`, `wait=`. Reading: `received()`,
`wait_for_received(n)`, `wait_for_status(wamid, status)`, `read()`, `window_open`.

The same levers are on the HTTP control plane under `/_emulator/` (see `control.py`), and
`waflow emulator` runs it in the foreground.

Tokens (`tokens.py`): `GET /debug_token` (as the app: `access_token=<app_id>|<app_secret>`), `GET|POST
/oauth/access_token` (`client_credentials` → an app token; `fb_exchange_token` → a 60-day user token), expiry
on the emulator's clock (190/463, sends included), 190 for an unknown token, 10 for a missing scope
(`whatsapp_business_messaging` for sends and media, `whatsapp_business_management` for templates).
"""

from __future__ import annotations

from . import inbound
from .app import EmulatorApp
from .config import EmulatorConfig, StatusDelays, TemplateSeed, TokenSeed
from .core import Emulator
from .faults import FaultSettings
from .server import EmulatorHandle, run_emulator, serve_asgi
from .state import OutboundMessage
from .users import SimulatedUser
from .webhooks import Attempt, DeliveryModes, sign

__all__ = [
    "Attempt",
    "DeliveryModes",
    "Emulator",
    "EmulatorApp",
    "EmulatorConfig",
    "EmulatorHandle",
    "FaultSettings",
    "OutboundMessage",
    "SimulatedUser",
    "StatusDelays",
    "TemplateSeed",
    "TokenSeed",
    "inbound",
    "run_emulator",
    "serve_asgi",
    "sign",
]
