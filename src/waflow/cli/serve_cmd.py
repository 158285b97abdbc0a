"""`waflow serve`, `waflow worker`, and `waflow config check | hash-key`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from waflow.cli.app import app

if TYPE_CHECKING:
    from waflow.config import Settings

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="waflow.toml (default: $WAFLOW_CONFIG, else ./waflow.toml)", dir_okay=False),
]
config_app = typer.Typer(help="Check the configuration; hash admin API keys.", no_args_is_help=True)
app.add_typer(config_app, name="config")


def _settings(config: Path | None) -> Settings:
    from waflow.config import ConfigError, load_settings

    try:
        return load_settings(config)
    except ConfigError as exc:
        typer.echo(exc.render(), err=True)
        raise typer.Exit(2) from None


@app.command()
def serve(
    config: ConfigOption = None,
    host: Annotated[str | None, typer.Option(help="Override [server].host.")] = None,
    port: Annotated[int | None, typer.Option(help="Override [server].port.")] = None,
) -> None:
    """Run waflow in one process: webhooks, admin API, engine, timers, status processor, dispatcher."""
    from waflow.server import serve as run

    run(_settings(config), host=host, port=port)


@app.command()
def worker(config: ConfigOption = None) -> None:
    """Run the engine, timers, dispatcher and status processor (no HTTP), beside `waflow serve` processes."""
    from waflow.server import worker as run

    run(_settings(config))


@config_app.command("check")
def check(config: ConfigOption = None) -> None:
    """Load the configuration and print it with secrets masked; exit 2 naming every problem."""
    import json

    settings = _settings(config)
    typer.echo(json.dumps(settings.redacted(), indent=2, default=str))


@config_app.command("hash-key")
def hash_key(key: Annotated[str, typer.Argument(help="The admin API key (at least 16 characters).")]) -> None:
    """Print the `sha256:<hex>` form of an admin API key, to put in `api.keys` instead of the key."""
    from waflow.config import hash_api_key

    if len(key) < 16:
        typer.echo("an API key needs at least 16 characters", err=True)
        raise typer.Exit(2)
    typer.echo(hash_api_key(key))
