"""`waflow serve`, `waflow worker`, and `waflow config check | hash-key`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

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


def _settings(config: Path | None, overrides: dict[str, Any] | None = None) -> Settings:
    from waflow.config import ConfigError, load_settings

    try:
        return load_settings(config, overrides=overrides)
    except ConfigError as exc:
        typer.echo(exc.render(), err=True)
        raise typer.Exit(2) from None


def _with_tls(settings: Settings, certfile: Path | None, keyfile: Path | None) -> Settings:
    """The settings with `--tls-certfile` / `--tls-keyfile` over `[server]` (checked like the file's)."""
    if certfile is None and keyfile is None:
        return settings
    from pydantic import ValidationError

    from waflow.config import ServerSettings, describe_errors

    data = settings.server.model_dump()
    if certfile is not None:
        data["tls_certfile"] = certfile
    if keyfile is not None:
        data["tls_keyfile"] = keyfile
    try:
        server = ServerSettings.model_validate(data)
    except ValidationError as exc:
        lines = [p if p.startswith("server.") else f"server.{p}" for p in describe_errors(exc)]
        typer.echo("configuration error (--tls-certfile / --tls-keyfile):\n" + "\n".join(f"  {p}" for p in lines),
                   err=True)
        raise typer.Exit(2) from None
    return settings.model_copy(update={"server": server})


@app.command()
def serve(
    config: ConfigOption = None,
    host: Annotated[str | None, typer.Option(help="Override [server].host.")] = None,
    port: Annotated[int | None, typer.Option(help="Override [server].port.")] = None,
    tls_certfile: Annotated[
        Path | None, typer.Option("--tls-certfile", help="Serve HTTPS with this PEM certificate chain "
                                  "(overrides [server].tls_certfile).", dir_okay=False)] = None,
    tls_keyfile: Annotated[
        Path | None, typer.Option("--tls-keyfile", help="The PEM private key of --tls-certfile "
                                  "(overrides [server].tls_keyfile).", dir_okay=False)] = None,
) -> None:
    """Run waflow in one process: webhooks, admin API, engine, timers, status processor, dispatcher."""
    from waflow.server import serve as run

    flags = {k: v for k, v in (("tls_certfile", tls_certfile), ("tls_keyfile", tls_keyfile)) if v is not None}
    # checked with the file's settings (require_https may count on them), and over any WAFLOW_SERVER__TLS_*
    settings = _with_tls(_settings(config, {"server": flags} if flags else None), tls_certfile, tls_keyfile)
    run(settings, host=host, port=port)


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
