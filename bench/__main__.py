"""`make bench`: every benchmark in turn, each in its own process, with its default settings.

Run one alone with `python -m bench.<name> --help` for its options. Figures are medians over
rounds; the machine is small and shared, so compare ratios measured in the same run.
"""

from __future__ import annotations

import subprocess
import sys
import time

BENCHMARKS = [
    ("emulator_throughput", "what the emulator serves"),
    ("client_throughput", "Cloud API client msg/s against the emulator (issue 2)"),
    ("store_inbox", "bulk deduplicated inbox inserts (store)"),
    ("webhooks_ingest", "signed webhooks ingested durably, vs pywa (issue 3)"),
    ("limits_throughput", "limiter decisions/s, in-process and Redis"),
    ("outbox_dispatch", "dispatcher msg/s at limits 80 and 1,000, vs a pywa loop (issue 4)"),
    ("outbox_priority", "reply latency while a campaign drains at 80 msg/s; campaigns interleaved (issue 13)"),
    ("engine_flow", "inbound messages/s through a 5-node flow (issue 5)"),
    ("engine_fairness", "others' reply latency while one contact floods the engine; the backlog cap (issue 16)"),
    ("intake_isolation", "signed webhook p99 alone and beside an unsigned flood from another address (issue 16)"),
    ("e2e_latency", "user message → reply latency through waflow serve (issue 6)"),
    ("scale", "ingest (vs pywa), dispatcher, API routes and engine on stores of 1k / 100k / 1M contacts"),
]


def main(argv: list[str]) -> int:
    wanted = set(argv) or {name for name, _ in BENCHMARKS}
    failed: list[str] = []
    for name, what in BENCHMARKS:
        if name not in wanted:
            continue
        print(f"\n=== bench.{name}: {what}", flush=True)
        started = time.monotonic()
        rc = subprocess.call([sys.executable, "-m", f"bench.{name}"])
        print(f"=== bench.{name}: exit {rc} after {time.monotonic() - started:.0f} s", flush=True)
        if rc != 0:
            failed.append(name)
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
