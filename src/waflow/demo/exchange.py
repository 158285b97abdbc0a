"""A scripted exchange over real sockets: waflow's client sends every message type to a simulated
user on the local Cloud API emulator, the user answers, and waflow's webhook endpoint stores the
answers and the delivery statuses in a fresh SQLite file. The transcript is printed as it happens.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.table import Table

from waflow.cloudapi import CloudAPIClient, Contact, ContactName, ContactPhone, SendResult, Template
from waflow.emulator import EmulatorConfig, SimulatedUser, run_emulator, serve_asgi
from waflow.store import Store, describe_url
from waflow.webhooks import WebhookConfig, create_webhook_app

APP_SECRET = "demo-app-secret"
VERIFY_TOKEN = "demo-verify-token"
TICKS = {
    "accepted": "· accepted",
    "sent": "✓ sent",
    "delivered": "✓✓ delivered",
    "read": "[blue]✓✓ read[/blue]",
    "failed": "[red]✗ failed[/red]",
}


@dataclass
class Transcript:
    console: Console
    sent: list[tuple[str, str]] = field(default_factory=list)  # (kind, wamid)

    def business(self, kind: str, text: str) -> None:
        self.console.print(f"[bold green]business →[/bold green] [dim]{kind:<18}[/dim] {text}")

    def user(self, kind: str, text: str) -> None:
        self.console.print(f"[bold cyan]     user →[/bold cyan] [dim]{kind:<18}[/dim] {text}")


async def _send(t: Transcript, kind: str, text: str, call: Callable[[], Awaitable[SendResult]]) -> str:
    result = await call()
    t.sent.append((kind, result.message_id))
    t.business(kind, text)
    return result.message_id


async def _business_sends_everything(t: Transcript, wa: CloudAPIClient, ana: SimulatedUser, first: str) -> str:
    to = ana.wa_id
    await wa.mark_read(first, typing=True)
    t.business("read + typing", "(blue ticks on Ana's message, typing indicator)")
    await _send(
        t,
        "text",
        "Hi Ana! Yes, we deliver on Sundays.",
        lambda: wa.send_text(to, "Hi Ana! Yes, we deliver on Sundays.", reply_to=first),
    )
    await _send(
        t,
        "image",
        "menu.jpg (link) — “Today's menu”",
        lambda: wa.send_image(to, "https://example.com/menu.jpg", caption="Today's menu"),
    )
    await _send(
        t,
        "document",
        "prices.pdf (link)",
        lambda: wa.send_document(to, "https://example.com/prices.pdf", filename="prices.pdf"),
    )
    await _send(
        t, "audio", "welcome.ogg (voice note)", lambda: wa.send_audio(to, "https://example.com/welcome.ogg", voice=True)
    )
    await _send(
        t,
        "video",
        "oven.mp4 — “Fresh from the oven”",
        lambda: wa.send_video(to, "https://example.com/oven.mp4", caption="Fresh from the oven"),
    )
    await _send(t, "sticker", "pizza.webp", lambda: wa.send_sticker(to, "https://example.com/pizza.webp"))
    await _send(
        t,
        "location",
        "Philz Pizza, 101 Forest Ave",
        lambda: wa.send_location(to, 37.4421, -122.1615, name="Philz Pizza", address="101 Forest Ave"),
    )
    card = Contact(
        name=ContactName(formatted_name="Luca (manager)"), phones=[ContactPhone(phone="+15550100", type="WORK")]
    )
    await _send(t, "contacts", "Luca (manager) +15550100", lambda: wa.send_contacts(to, [card]))
    await _send(
        t,
        "cta_url",
        "[Order online] → https://example.com/order",
        lambda: wa.send_cta_url(to, "Skip the queue:", "Order online", "https://example.com/order"),
    )
    await _send(
        t,
        "location_request",
        "“Where should we deliver?” [Send location]",
        lambda: wa.send_location_request(to, "Where should we deliver?"),
    )
    buttons = await _send(
        t,
        "buttons",
        "“Which size?” [Small] [Medium] [Large]",
        lambda: wa.send_buttons(to, "Which size?", [("s", "Small"), ("m", "Medium"), ("l", "Large")]),
    )
    menu = await _send(
        t,
        "list",
        "“Pick a pizza” [Menu ▾] Margherita / Diavola / Funghi",
        lambda: wa.send_list(
            to,
            "Pick a pizza",
            "Menu",
            {
                "Classics": [
                    ("margherita", "Margherita", "Tomato, mozzarella"),
                    ("diavola", "Diavola", "Spicy salami"),
                    ("funghi", "Funghi", "Mushrooms"),
                ]
            },
        ),
    )
    confirm = await _send(
        t,
        "template",
        "order_ready(“Ana”, “#4821”) [Stop promos]",
        lambda: wa.send_template(
            to, "order_ready", "en_US", body=["Ana", "#4821"], buttons=[Template.quick_reply(0, "STOP_PROMOS")]
        ),
    )
    t.user("reply_button", "taps [Medium]")
    await ana.reply_button(to_message=buttons, id="m", title="Medium")
    t.user("list_reply", "picks Diavola")
    await ana.reply_list(to_message=menu, id="diavola", title="Diavola", description="Spicy salami")
    t.user("location", "shares 37.44, -122.16 (Home)")
    await ana.send_location(37.4419, -122.1600, name="Home")
    t.user("template button", "taps [Stop promos]")
    await ana.tap_template_button(to_message=confirm, payload="STOP_PROMOS", text="Stop promos")
    t.user("reaction", "reacts 👍 to the confirmation")
    await ana.react(to_message=confirm, emoji="👍")
    return confirm


async def run_exchange(console: Console | None = None, workdir: Path | None = None) -> int:
    """Play the exchange; return 0 when every step was stored as expected."""
    console = console or Console()
    t = Transcript(console)
    with tempfile.TemporaryDirectory(prefix="waflow-demo-") as tmp:
        db = Path(workdir or tmp) / "demo.db"
        store = Store.open(f"sqlite+aiosqlite:///{db}")
        await store.upgrade()
        emulator = EmulatorConfig(app_secret=APP_SECRET, verify_token=VERIFY_TOKEN)
        config = WebhookConfig.single(emulator.phone_number_id, APP_SECRET, VERIFY_TOKEN, waba_id=emulator.waba_id)
        try:
            async with serve_asgi(create_webhook_app(config, store)) as url:
                emulator = emulator.model_copy(update={"callback_url": f"{url}/webhook"})
                async with run_emulator(emulator) as emu:
                    emu.add_template(
                        "order_ready",
                        "Hi {{1}}, order {{2}} is ready!",
                        components=[
                            {"type": "BODY", "text": "Hi {{1}}, order {{2}} is ready!"},
                            {"type": "BUTTONS", "buttons": [{"type": "QUICK_REPLY", "text": "Stop promos"}]},
                        ],
                    )
                    console.rule("[bold]waflow demo: the Cloud API emulator and a scripted exchange")
                    ok = await emu.verify_callback()
                    console.print(f"webhook handshake (hub.challenge): {'[green]ok' if ok else '[red]refused'}")
                    ana = emu.user("34600111222", name="Ana")
                    t.user("text", "Hola! Do you deliver on Sundays?")
                    first = await ana.send_text("Hola! Do you deliver on Sundays?")
                    async with CloudAPIClient(
                        phone_number_id=emu.config.phone_number_id,
                        waba_id=emu.config.waba_id,
                        token=emu.config.access_token,
                        base_url=emu.base_url,
                    ) as wa:
                        await _business_sends_everything(t, wa, ana, first)
                    t.user("read", "opens the chat: everything read")
                    await asyncio.sleep(0.1)  # statuses go out 20–50 ms after acceptance
                    ana.read()
                    for _, wamid in t.sent:
                        await ana.wait_for_status(wamid, "read", timeout=5)
                    await emu.webhooks_idle(timeout=10)
                    await asyncio.sleep(0.3)  # let the status processor apply the last statuses
                    return await _summary(console, t, ana, store)
        finally:
            await store.close()


async def _summary(console: Console, t: Transcript, ana: SimulatedUser, store: Store) -> int:
    seen = {m.wamid: m for m in ana.received()}
    table = Table(title="What Ana's phone shows (status from the emulator's webhooks)")
    table.add_column("message")
    table.add_column("status")
    for kind, wamid in t.sent:
        status = seen[wamid].status if wamid in seen else "missing"
        table.add_row(kind, TICKS.get(status, status))
    console.print(table)
    async with store.read() as conn:
        events = await store.inbox.claim_pending(conn, kind=None, limit=1000)
    kinds: dict[str, int] = {}
    for event in events:
        kinds[event.kind] = kinds.get(event.kind, 0) + 1
    console.print(f"inbox of {describe_url(store.url)} (events waiting for the flow engine): {kinds}")
    missing = [kind for kind, wamid in t.sent if wamid not in seen]
    user_messages = kinds.get("message", 0)
    ok = not missing and user_messages >= 6
    console.print(
        f"sent {len(t.sent)} message types, all accepted: {'[green]yes' if not missing else f'[red]no {missing}'}; "
        f"user messages stored by the webhook endpoint: {user_messages} (expected 6)"
    )
    return 0 if ok else 1
