"""`python -m waflow.server [--config waflow.toml] [--worker]`: the same as `waflow serve` / `waflow worker`."""

from __future__ import annotations

import argparse
import sys

from waflow.config import ConfigError, load_settings
from waflow.server.run import serve, worker


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m waflow.server", description=__doc__)
    parser.add_argument("--config", "-c", default=None)
    parser.add_argument("--worker", action="store_true", help="run `waflow worker` instead of `waflow serve`")
    args = parser.parse_args(argv)
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        print(exc.render(), file=sys.stderr)
        return 2
    (worker if args.worker else serve)(settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
