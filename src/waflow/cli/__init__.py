"""`waflow` on the command line. Commands only parse arguments and call into the parts."""

from __future__ import annotations

import importlib
import logging

from waflow.cli import chat_cmd, db_cmd, demo_cmd, emulator_cmd, serve_cmd, token_cmd  # noqa: F401  (they register their commands)
from waflow.cli.app import app

# Modules of parts still being built: registered when they import cleanly.
for _name in ("flow_cmd", "send_cmd"):
    try:
        importlib.import_module(f"waflow.cli.{_name}")
    except ImportError as _exc:  # pragma: no cover - depends on what is installed / finished
        if getattr(_exc, "name", None) != f"waflow.cli.{_name}":
            logging.getLogger("waflow.cli").debug("waflow.cli.%s not registered: %s", _name, _exc)


def main() -> None:
    app()


__all__ = ["app", "main"]
