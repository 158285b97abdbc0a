"""`waflow demo`: the whole product on real sockets, played by simulated users."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from waflow.cli.app import app


@app.command()
def demo(
    exchange: Annotated[
        bool, typer.Option("--exchange", help="Play the scripted exchange of every message type instead.")
    ] = False,
) -> None:
    """Start the emulator and waflow serve, let four users talk to the demo shop flow, print the transcript."""
    if exchange:
        from waflow.demo import run_exchange

        raise typer.Exit(asyncio.run(run_exchange()))
    from waflow.demo import run_demo

    raise typer.Exit(asyncio.run(run_demo()))
