"""`waflow demo`."""

from __future__ import annotations

import asyncio

import typer

from waflow.cli.app import app


@app.command()
def demo() -> None:
    """Start the emulator and waflow, play a scripted exchange, print the transcript."""
    from waflow.demo import run_exchange

    raise typer.Exit(asyncio.run(run_exchange()))
