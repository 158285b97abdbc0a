"""`python -m bench.reliability [--quick] [--only NAME ...] [--keep DIR]`: run the scenarios, print the table,
exit 1 if a promise did not hold (or a required service was missing)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from .crash import crash
from .faults import faults
from .hostile import hostile
from .report import Result, print_report
from .security import scan_logs, security
from .storm import storm


@dataclass(frozen=True)
class Sizes:
    conversations: int
    kills: int
    crash_s: float
    pg_conversations: int
    pg_kills: int
    fault_conversations: int
    fault_s: float
    storm_s: float
    storm_rate: float
    storm_conversations: int
    fuzz_examples: int
    schema_examples: int


FULL = Sizes(2000, 6, 150.0, 600, 5, 500, 40.0, 60.0, 3300.0, 1150, 3000, 30)
QUICK = Sizes(50, 2, 8.0, 40, 2, 40, 6.0, 5.0, 1000.0, 60, 150, 5)
NAMES = ("crash", "crash-pg", "faults", "storm", "hostile", "security")


def scenarios(s: Sizes, work: Path) -> dict[str, Callable[[], Awaitable[Result]]]:
    return {
        "crash": lambda: crash(work / "crash", conversations=s.conversations, kills=s.kills, over_s=s.crash_s),
        "crash-pg": lambda: crash(work / "crash-pg", conversations=s.pg_conversations, kills=s.pg_kills,
                                  over_s=s.crash_s / 3, postgres=True),
        "faults": lambda: faults(work / "faults", conversations=s.fault_conversations, over_s=s.fault_s),
        "storm": lambda: storm(work / "storm", seconds=s.storm_s, rate=s.storm_rate,
                               conversations=s.storm_conversations),
        "hostile": lambda: hostile(work / "hostile", examples=s.fuzz_examples, schema_examples=s.schema_examples),
        "security": lambda: security(work / "security"),
    }


def quiet() -> None:
    """The emulator's injected faults (dropped connections) make uvicorn and asyncio complain: expected noise."""
    for name in ("uvicorn.error", "asyncio", "waflow.emulator", "hypothesis"):
        logger = logging.getLogger(name)
        logger.setLevel(logging.CRITICAL)
        logger.addFilter(lambda record: False)  # uvicorn resets levels when a server starts; filters stay


async def run(names: list[str], sizes: Sizes, work: Path) -> list[Result]:
    quiet()
    table = scenarios(sizes, work)
    results: list[Result] = []
    for name in names:
        t0 = time.monotonic()
        print(f"… {name}", file=sys.stderr, flush=True)
        try:
            result = await table[name]()
        except Exception as exc:
            result = Result(name, "(did not finish)", notes=[traceback.format_exc()[-3000:]])
            result.notes.insert(0, f"{type(exc).__name__}: {exc}")
        result.seconds = result.seconds or time.monotonic() - t0
        print(result.summary(), file=sys.stderr, flush=True)
        results.append(result)
    logs = sorted(work.rglob("*.log"))  # noqa: ASYNC240 (after the run)
    if logs:
        secrets = _secrets_of(work)
        log_check = scan_logs(logs, secrets)
        results.append(Result("logs", "every log file every process wrote during the suite, scanned for the "
                                      "tokens (incl. rotated), app secrets, verify tokens and admin key",
                              [log_check]))
    return results


def _secrets_of(work: Path) -> dict[str, str]:
    """Secrets of every deployment of the run (their config files and token files are in `work`)."""
    import re

    from waflow.server.testing import API_KEY

    out = {"admin key": API_KEY}
    for cfg in work.rglob("waflow.toml"):
        text = cfg.read_text()
        for key in ("app_secret", "verify_token"):
            m = re.search(rf'^{key} = "(.*)"$', text, re.M)
            if m:
                out[f"{key} ({cfg.parent.name})"] = m.group(1)
    for token in work.rglob("access-token"):
        out[f"token ({token.parent.name})"] = token.read_text().strip()
    for seen in work.rglob("tokens.txt"):
        for i, line in enumerate(seen.read_text().split()):
            out[f"token {i} ({seen.parent.name})"] = line
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.reliability", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="the short version (what `make test` runs)")
    parser.add_argument("--only", nargs="+", choices=NAMES, help="run only these scenarios")
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it (logs, databases)")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    names = list(args.only or NAMES)
    t0 = time.monotonic()
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        results = asyncio.run(run(names, sizes, args.keep))
    else:
        with tempfile.TemporaryDirectory(prefix="waflow-reliability-") as tmp:
            results = asyncio.run(run(names, sizes, Path(tmp)))
    title = f"waflow reliability ({'quick' if args.quick else 'full'}, {time.monotonic() - t0:.0f} s)"
    print_report(results, title)
    return 0 if all(r.ok or r.skipped for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
