"""`waflow` on the command line. Commands only parse arguments and call into the parts."""

from __future__ import annotations

from waflow.cli import db_cmd, demo_cmd, emulator_cmd, flow_cmd  # noqa: F401  (they register their commands)
from waflow.cli.app import app


def main() -> None:
    app()


__all__ = ["app", "main"]
