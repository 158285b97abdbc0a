"""`waflow chat FLOW`: talk to a flow as a WhatsApp user, in the terminal."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from waflow.cli.app import app


@app.command()
def chat(
    flow: Annotated[Path, typer.Argument(help="A flow file (.yaml / .json).", exists=True, dir_okay=False)],
    wa_id: Annotated[str, typer.Option(help="Your simulated phone number.")] = "15550001234",
    name: Annotated[str, typer.Option(help="Your profile name.")] = "You",
) -> None:
    """Chat with a flow through the emulator and waflow serve (buttons and lists as numbered choices)."""
    from waflow.demo.chat import run_chat

    raise typer.Exit(asyncio.run(run_chat(flow, wa_id=wa_id, name=name)))
