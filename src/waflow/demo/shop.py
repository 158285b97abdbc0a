"""`waflow demo`: the emulator, `waflow serve` and the shop's order API on real sockets; four simulated users
talk to the `demo_shop` flow at once (buttons, a list, a question answered wrongly first, an HTTP call, a
handoff answered by an agent through the admin API); the transcripts are printed with status ticks.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

from waflow.demo.orders import orders_app
from waflow.demo.phone import TICKS, Phone, render
from waflow.demo.stack import LocalStack, local_stack
from waflow.emulator import serve_asgi

FLOW_ID = "demo_shop"


def flow_text() -> str:
    return resources.files("waflow.demo").joinpath("demo_shop.yaml").read_text("utf-8")


@dataclass
class Conversation:
    name: str
    phone: Phone
    lines: list[tuple[str, str, str | None]] = field(default_factory=list)  # (who, text, wamid)
    failures: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    _asked_at: float = 0.0

    async def say(self, text: str) -> None:
        self.lines.append((self.name, text, None))
        self._asked_at = time.perf_counter()
        await self.phone.say(text)

    async def tap(self, answer: str) -> None:
        choice = await self.phone.tap(answer)
        self.lines.append((self.name, f"taps [{choice.title}]", None))
        self._asked_at = time.perf_counter()

    async def expect(self, contains: str, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        try:
            msg = await self.phone.next(timeout=timeout)
        except TimeoutError:
            self.failures.append(f"expected a message with {contains!r}: none came")
            raise
        if self._asked_at:
            self.latencies.append(time.perf_counter() - self._asked_at)
            self._asked_at = 0.0
        text, choices = render(msg)
        shown = text + "".join(f"  [{c.title}]" if c.kind == "button" else f"\n      ▸ {c.title}" for c in choices)
        self.lines.append(("shop", shown, msg.wamid))
        if contains not in text:
            self.failures.append(f"expected {contains!r}, got {text!r}")


class Agent:
    """A person at the admin API: finds the conversation in the handoff inbox, answers, hands back."""

    def __init__(self, api: httpx.AsyncClient) -> None:
        self.api = api

    async def session_of(self, wa_id: str, timeout: float = 10.0) -> int:  # noqa: ASYNC109
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            inbox = (await self.api.get("/api/v1/handoff")).json()["items"]
            for item in inbox:
                if item["session"]["contact"]["wa_id"] == wa_id:
                    return int(item["session"]["id"])
            await asyncio.sleep(0.05)
        raise TimeoutError(f"{wa_id} never reached the handoff inbox")

    async def reply(self, c: Conversation, text: str) -> None:
        sid = await self.session_of(c.phone.user.wa_id)
        r = await self.api.post(f"/api/v1/sessions/{sid}/reply", json={"text": text})
        if r.status_code != 202:
            c.failures.append(f"agent reply refused: {r.status_code} {r.text}")
        c.lines.append(("agent", f"(via the admin API) {text}", None))

    async def hand_back(self, c: Conversation) -> None:
        sid = await self.session_of(c.phone.user.wa_id)
        r = await self.api.post(f"/api/v1/sessions/{sid}/hand-back", json={})
        if r.status_code != 202:
            c.failures.append(f"hand-back refused: {r.status_code} {r.text}")
        c.lines.append(("agent", "(hands the conversation back to the flow)", None))


async def ana(c: Conversation, _agent: Agent) -> None:
    await c.say("hi")
    await c.expect("Welcome to Corner Coffee")
    await c.tap("Order a coffee")
    await c.expect("What would you like?")
    await c.tap("Latte")
    await c.expect("How many?")
    await c.say("lots")
    await c.expect("Please answer with a number")
    await c.say("2")
    await c.expect("Order #")
    await c.expect("Anything else?")
    await c.tap("No, thanks")
    await c.expect("Thanks for visiting")


async def ben(c: Conversation, agent: Agent) -> None:
    await c.say("hello")
    await c.expect("Welcome to Corner Coffee")
    await c.tap("Talk to a person")
    await c.expect("A barista will answer you here")
    await agent.reply(c, "Hi Ben! Yes, we have oat milk.")
    await c.expect("oat milk")
    await c.say("Great, thanks!")
    await agent.hand_back(c)
    await c.expect("Thanks for visiting")


async def chloe(c: Conversation, agent: Agent) -> None:
    await c.say("coffee")
    await c.expect("Welcome to Corner Coffee")
    await c.tap("1")  # by number, like the chat does
    await c.expect("What would you like?")
    await c.tap("Espresso")
    await c.expect("How many?")
    await c.say("1")
    await c.expect("Order #")
    await c.expect("Anything else?")
    await c.tap("Ask a barista")
    await c.expect("A barista will answer you here")
    await agent.reply(c, "Your espresso is on the bar, Chloé!")
    await c.expect("on the bar")
    await agent.hand_back(c)
    await c.expect("Thanks for visiting")


async def dev(c: Conversation, _agent: Agent) -> None:
    await c.say("menu")
    await c.expect("Welcome to Corner Coffee")
    await c.tap("Order a coffee")
    await c.expect("What would you like?")
    await c.tap("Cappuccino")
    await c.expect("How many?")
    await c.say("12")
    await c.expect("Please answer with a number")
    await c.say("3")
    await c.expect("Order #")
    await c.expect("Anything else?")
    await c.tap("No, thanks")
    await c.expect("Thanks for visiting")


Script = Callable[[Conversation, Agent], Awaitable[None]]
USERS: list[tuple[str, str, Script]] = [
    ("Ana", "34600111222", ana),
    ("Ben", "447700900123", ben),
    ("Chloé", "33612345678", chloe),
    ("Dev", "919876543210", dev),
]


async def _play(c: Conversation, script: Script, agent: Agent) -> None:
    try:
        await script(c, agent)
    except Exception as exc:
        if not c.failures or not isinstance(exc, TimeoutError):
            c.failures.append(f"{type(exc).__name__}: {exc}")


async def run_demo(console: Console | None = None, workdir: Path | None = None) -> int:
    """Play the demo; 0 when every expectation held."""
    console = console or Console()
    orders = orders_app()
    async with serve_asgi(orders) as orders_url, local_stack(workdir=workdir) as stack:
        console.rule("[bold]waflow demo — Corner Coffee")
        console.print(f"emulator {stack.emulator.base_url} · waflow serve {stack.url} "
                      f"(admin API at {stack.url}/docs) · order API {orders_url}")
        flow = flow_text().replace("http://127.0.0.1:8765", orders_url)
        r = await stack.api.post("/api/v1/flows", content=flow, headers={"content-type": "application/yaml"})
        if r.status_code != 201:
            console.print(f"[red]deploying the flow failed: {r.status_code} {r.text}")
            return 1
        console.print(f"flow [bold]{FLOW_ID}[/bold] deployed through the admin API: version {r.json()['version']}")
        agent = Agent(stack.api)
        talks = [Conversation(name, Phone(stack.emulator.user(wa_id, name=name))) for name, wa_id, _ in USERS]
        started = time.perf_counter()
        await asyncio.gather(*(_play(c, script, agent) for c, (_, _, script) in zip(talks, USERS, strict=True)))
        elapsed = time.perf_counter() - started
        await _settle_statuses(stack, talks)
        return await _report(console, stack, talks, len(orders.state.orders), elapsed)


async def _settle_statuses(stack: LocalStack, talks: list[Conversation]) -> None:
    """Users read what they got; wait until waflow has recorded the read statuses."""
    for c in talks:
        c.phone.user.read()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        listed = (await stack.api.get("/api/v1/messages", params={"limit": 500})).json()["items"]
        if listed and all(m["status"] in ("read", "failed") for m in listed):
            return
        await asyncio.sleep(0.1)


async def _report(console: Console, stack: LocalStack, talks: list[Conversation], orders: int, elapsed: float) -> int:
    stored = {m["wamid"]: m["status"] for m in
              (await stack.api.get("/api/v1/messages", params={"limit": 500})).json()["items"]}
    sessions = (await stack.api.get("/api/v1/sessions", params={"limit": 100})).json()["items"]
    ends = {s["contact"]["wa_id"]: (s["state"], s["end_reason"]) for s in sessions}
    table = Table(title="summary")
    for col in ("user", "messages (in/out)", "stored status", "session", "replies p50", "expectations"):
        table.add_column(col)
    failed = False
    for c in talks:
        console.rule(f"[bold cyan]{c.name}[/bold cyan] ({c.phone.user.wa_id})", align="left")
        for who, text, wamid in c.lines:
            if who == "shop":
                phone_status = stack.emulator.message(wamid).status if wamid else ""
                console.print(f"  [green]shop →[/green] {text}  {TICKS.get(phone_status, phone_status)}")
            elif who == "agent":
                console.print(f"  [magenta]agent[/magenta] {text}")
            else:
                console.print(f"  [cyan]{who} →[/cyan] {text}")
        outs = [w for who, _, w in c.lines if who == "shop" and w]
        statuses = {stored.get(w, "missing") for w in outs}
        state, reason = ends.get(c.phone.user.wa_id, ("missing", None))
        if state != "ended":
            c.failures.append(f"session is {state}, expected ended")
        if statuses - {"read"}:
            c.failures.append(f"stored statuses {sorted(statuses)}, expected all read")
        p50 = f"{statistics.median(c.latencies) * 1000:.0f} ms" if c.latencies else "-"
        ins = sum(1 for who, _, _ in c.lines if who == c.name)
        table.add_row(c.name, f"{ins}/{len(outs)}", ", ".join(sorted(statuses)), f"{state} ({reason})", p50,
                      "[green]ok" if not c.failures else "[red]" + "; ".join(c.failures))
        failed = failed or bool(c.failures)
    console.print(table)
    if orders != 3:
        failed = True
        console.print(f"[red]the order API received {orders} orders, expected 3")
    verdict = "[green]all expectations held" if not failed else "[red]some expectations failed"
    console.print(f"{len(talks)} conversations in {elapsed:.1f} s, {orders} orders placed over HTTP — {verdict}")
    return 1 if failed else 0
