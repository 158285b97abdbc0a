"""The `waflow` command: one Typer app; each part's commands live in their own module here."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="waflow",
    help="A self-hostable runtime for WhatsApp Business bots and integrations.",
    no_args_is_help=True,
    add_completion=False,
)


@app.command()
def version() -> None:
    """Print waflow's version."""
    from waflow import __version__

    typer.echo(__version__)


@app.callback()
def _root() -> None:
    """A self-hostable runtime for WhatsApp Business bots and integrations."""
