"""`waflow emulator`: run the local Cloud API stand-in in the foreground."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from waflow.cli.app import app


@app.command()
def emulator(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8088,
    callback_url: Annotated[str | None, typer.Option(help="Where to POST signed webhooks.")] = None,
    app_secret: Annotated[str | None, typer.Option(help="App secret that signs webhooks.",
                                                   envvar="WAFLOW_EMULATOR_APP_SECRET")] = None,
    verify_token: Annotated[str | None, typer.Option(help="Verify token for the GET handshake.",
                                                     envvar="WAFLOW_EMULATOR_VERIFY_TOKEN")] = None,
    token: Annotated[list[str] | None, typer.Option(help="A valid access token (repeatable).",
                                                    envvar="WAFLOW_EMULATOR_TOKEN")] = None,
    throughput: Annotated[float | None, typer.Option(help="Messages per second per number.")] = None,
    config: Annotated[Path | None, typer.Option(help="JSON or YAML file with EmulatorConfig fields.",
                                                exists=True, dir_okay=False)] = None,
) -> None:
    """Run the WhatsApp Cloud API emulator (Graph paths, media, templates, webhooks, control plane)."""
    import uvicorn

    from waflow.emulator import Emulator, EmulatorApp, EmulatorConfig

    overrides: dict[str, object] = {
        "callback_url": callback_url,
        "app_secret": app_secret,
        "verify_token": verify_token,
        "access_tokens": token or None,
        "throughput_mps": throughput,
    }
    if config is not None:
        cfg = EmulatorConfig.from_file(config, **overrides)
    else:
        cfg = EmulatorConfig.model_validate({k: v for k, v in overrides.items() if v is not None})
    typer.echo(
        f"emulator on http://{host}:{port}  phone_number_id={cfg.phone_number_id}  waba_id={cfg.waba_id}  "
        f"callback={cfg.callback_url or '-'}  (tokens and secrets not shown)"
    )
    uvicorn.run(EmulatorApp(Emulator(cfg)), host=host, port=port, log_level="warning", access_log=False,
                http="httptools", loop="uvloop", lifespan="on")
