"""`waflow chat FLOW`: talk to a flow as a WhatsApp user in the terminal.

The emulator and `waflow serve` run in this process on real sockets; the flow file is uploaded through the
admin API; what the business sends is printed with buttons and list rows as numbered choices (type the
number or the title to tap one; anything else is sent as text; `/quit` leaves, `/session` shows the state).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from rich.console import Console

from waflow.demo.phone import TICKS, Phone, render
from waflow.demo.stack import local_stack
from waflow.emulator import OutboundMessage

Reader = Callable[[str], str]


def _show(console: Console, msg: OutboundMessage) -> None:
    text, choices = render(msg)
    console.print(f"[green]business[/green] {text}  [dim]{TICKS.get(msg.status, msg.status)}[/dim]")
    for i, choice in enumerate(choices, 1):
        console.print(f"    [bold]{i}[/bold]. {choice.title}")


async def run_chat(
    flow: Path, *, console: Console | None = None, read: Reader = input, wa_id: str = "15550001234", name: str = "You"
) -> int:
    console = console or Console()
    async with local_stack() as stack:
        document = await asyncio.to_thread(flow.read_bytes)
        r = await stack.api.post("/api/v1/flows", content=document,
                                 headers={"content-type": "application/json" if flow.suffix == ".json" else
                                          "application/yaml"})
        if r.status_code != 201:
            console.print(f"[red]{flow} cannot be deployed:[/red]")
            for p in r.json().get("problems", []):
                where = " ".join(x for x in (f"line {p.get('line')}" if p.get("line") else "", p.get("node") or "",
                                             p.get("field") or "") if x)
                console.print(f"  {where}: {p['message']}")
            return 1
        console.print(f"[bold]chatting with flow {r.json()['flow_id']} (version {r.json()['version']})[/bold] — "
                      "type a message; a number or a title taps a choice; /quit to leave")
        phone = Phone(stack.emulator.user(wa_id, name=name))
        while True:
            try:
                line = (await asyncio.to_thread(read, "you › ")).strip()
            except (EOFError, KeyboardInterrupt):
                break
            if not line:
                continue
            if line in ("/quit", "/exit"):
                break
            if line == "/session":
                sessions = (await stack.api.get("/api/v1/sessions", params={"limit": 1})).json()["items"]
                s = sessions[0] if sessions else None
                console.print(f"[dim]{s['flow_id']} at {s['current_node']} ({s['state']}), vars {s['vars']}[/dim]"
                              if s else "[dim]no session[/dim]")
                continue
            if phone.choice(line) is not None:
                choice = await phone.tap(line)
                console.print(f"[cyan]you tapped[/cyan] {choice.title}")
            else:
                await phone.say(line)
            for msg in await phone.settle(quiet_s=0.5):
                _show(console, msg)
    return 0
