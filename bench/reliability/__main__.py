"""`python -m bench.reliability [--quick] [--only NAME ...] [--keep DIR] [--hog | --no-hog] [--seeds N ...]`:
run the scenarios, print the table, exit 1 if a promise did not hold in any run (or a required service was
missing).

Each scenario runs beside a CPU hog (`bench.reliability.hog`: one core kept busy by a separate process) — on by
default for the full run, off for `--quick` (what `make test` runs); the crash scenarios run once per seed of
their SIGKILL moments (full: 1, 2, 3; quick: 1), each run its own row."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path

from .consent import consent
from .crash import crash
from .faults import faults
from .hog import Hog
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
    consent_users: int = 20
    crash_seeds: tuple[int, ...] = (1,)  # one crash run (each of SQLite and PostgreSQL) per seed of its kill times


FULL = Sizes(2000, 6, 150.0, 600, 5, 500, 40.0, 60.0, 3300.0, 1150, 3000, 30, consent_users=200, crash_seeds=(1, 2, 3))
QUICK = Sizes(50, 2, 8.0, 40, 2, 40, 6.0, 5.0, 1000.0, 60, 150, 5, crash_seeds=(1,))
NAMES = ("crash", "crash-pg", "faults", "storm", "hostile", "security", "consent")
Run = tuple[str | None, Callable[[], Awaitable[Result]]]  # (what tells this run from the scenario's others, run)


def scenarios(s: Sizes, work: Path) -> dict[str, list[Run]]:
    """Each scenario's runs: the crash scenarios once per seed (each in its own folder), the others once."""
    def crash_runs(seed: int) -> tuple[Run, Run]:
        return (
            (f"seed {seed}", lambda: crash(work / f"crash-seed{seed}", conversations=s.conversations, kills=s.kills,
                                           over_s=s.crash_s, seed=seed)),
            (f"seed {seed}", lambda: crash(work / f"crash-pg-seed{seed}", conversations=s.pg_conversations,
                                           kills=s.pg_kills, over_s=s.crash_s / 3, postgres=True, seed=seed)),
        )

    seeded = [crash_runs(seed) for seed in s.crash_seeds]
    return {
        "crash": [sqlite for sqlite, _ in seeded],
        "crash-pg": [pg for _, pg in seeded],
        "faults": [(None, lambda: faults(work / "faults", conversations=s.fault_conversations, over_s=s.fault_s))],
        "storm": [(None, lambda: storm(work / "storm", seconds=s.storm_s, rate=s.storm_rate,
                                       conversations=s.storm_conversations))],
        "hostile": [(None, lambda: hostile(work / "hostile", examples=s.fuzz_examples,
                                           schema_examples=s.schema_examples))],
        "security": [(None, lambda: security(work / "security"))],
        "consent": [(None, lambda: consent(work / "consent", users=s.consent_users))],
    }


def quiet() -> None:
    """The emulator's injected faults (dropped connections) make uvicorn and asyncio complain: expected noise."""
    for name in ("uvicorn.error", "asyncio", "waflow.emulator", "hypothesis"):
        logger = logging.getLogger(name)
        logger.setLevel(logging.CRITICAL)
        logger.addFilter(lambda record: False)  # uvicorn resets levels when a server starts; filters stay


async def run(names: list[str], sizes: Sizes, work: Path, *, hog: bool = False) -> list[Result]:
    """Every run of every named scenario, one after the other; with `hog`, each beside its own CPU hog (started
    before the run's deployment, stopped when the run ends — also on a failure or KeyboardInterrupt)."""
    quiet()
    table = scenarios(sizes, work)
    results: list[Result] = []
    for name in names:
        for variant, scenario in table[name]:
            label = f"{name}, {variant}" if variant else name
            t0 = time.monotonic()
            print(f"… {label}{' (CPU hog on)' if hog else ''}", file=sys.stderr, flush=True)
            hogging = Hog() if hog else None
            with hogging or contextlib.nullcontext():
                try:
                    result = await scenario()
                except Exception as exc:
                    result = Result(label, "(did not finish)", notes=[traceback.format_exc()[-3000:]])
                    result.notes.insert(0, f"{type(exc).__name__}: {exc}")
            if variant and result.scenario != label:
                result.scenario = f"{result.scenario}, {variant}"
            result.hog = hogging.describe() if hogging else "off"
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
    parser.add_argument("--hog", action=argparse.BooleanOptionalAction, default=None,
                        help="keep one core busy with a separate process while each scenario runs "
                             "(default: on for the full run, off with --quick)")
    parser.add_argument("--seeds", type=int, nargs="+", metavar="N",
                        help="one crash run per seed of its SIGKILL moments (default: 1 2 3; --quick: 1)")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    if args.seeds:
        sizes = replace(sizes, crash_seeds=tuple(dict.fromkeys(args.seeds)))
    hog = (not args.quick) if args.hog is None else args.hog
    names = list(args.only or NAMES)
    t0 = time.monotonic()
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        results = asyncio.run(run(names, sizes, args.keep, hog=hog))
    else:
        with tempfile.TemporaryDirectory(prefix="waflow-reliability-") as tmp:
            results = asyncio.run(run(names, sizes, Path(tmp), hog=hog))
    seeds = " ".join(map(str, sizes.crash_seeds))
    title = (f"waflow reliability ({'quick' if args.quick else 'full'}, {time.monotonic() - t0:.0f} s, "
             f"CPU hog {'on' if hog else 'off'}, crash seeds {seeds})")
    print_report(results, title)
    return 0 if all(r.ok or r.skipped for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
