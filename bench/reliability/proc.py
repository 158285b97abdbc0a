"""`python -m bench.reliability.proc -c waflow.toml [--worker]`: `waflow serve` / `waflow worker`, with the
recovery timings compressed for a test run.

A real deployment waits 15 s before it takes over a dead process's leased rows (`lease_s`), 60 s more before
it resends a send whose outcome is unknown (`unknown_grace_s`), 60 s before it redoes an interrupted `http`
node (`stale_after`), and backs off up to 5 minutes. Those waits are the same promises on a shorter clock —
as the emulator's webhook retry schedule compresses Meta's days of retries — so a suite that kills the
process several times finishes in minutes. Budgets (`max_attempts`, `max_throttles`) keep their defaults.
None of these is a setting of `waflow.toml`, so they are set here, from `WAFLOW_RELIABILITY_*` variables.
"""

from __future__ import annotations

import os
import sys
from datetime import timedelta
from typing import Any


def _seconds(name: str, default: float) -> float:
    return float(os.environ.get(f"WAFLOW_RELIABILITY_{name}", default))


def compress_timings() -> None:
    from waflow.engine.runtime.config import EngineConfig
    from waflow.outbox import DispatcherConfig, RetryPolicy
    from waflow.server import parts

    # The grace must outlast the status webhooks' delay (a first full run with 2 s resent 4 messages whose
    # statuses were 14 s late behind a killed process's backlog). A resend also waits for every status already
    # *stored* before its grace ended to be applied (`OutboxDispatcher._may_resend`), but a status still at the
    # emulator, redelivered to an overloaded restarted process (answers slower than the emulator's 5 s webhook
    # timeout), is not stored yet: a full crash run beside a CPU hog and another benchmark with 10 s resent 5
    # messages. The faults scenario (no kills; its unknown outcomes are sends the emulator holds 4 s, whose
    # statuses come at once) runs with 10 s.
    lease, grace = _seconds("LEASE_S", 8.0), _seconds("UNKNOWN_GRACE_S", 30.0)
    base, ceiling = _seconds("RETRY_BASE_S", 0.1), _seconds("RETRY_MAX_S", 2.0)
    stale = _seconds("STALE_AFTER_S", 6.0)

    def dispatcher_config(**kw: Any) -> DispatcherConfig:
        kw.pop("lease_s", None)  # `[outbox]` settings: replaced by the compressed timings here
        kw.pop("retry", None)
        retry = RetryPolicy(base_delay_s=base, max_delay_s=ceiling, unknown_grace_s=grace)
        return DispatcherConfig(lease_s=lease, maintenance_s=min(1.0, lease / 4), retry=retry, **kw)

    def engine_config(**kw: Any) -> EngineConfig:
        return EngineConfig(stale_after=timedelta(seconds=stale), **kw)

    setattr(parts, "DispatcherConfig", dispatcher_config)  # noqa: B010 (the names make_dispatchers/engine_config call)
    setattr(parts, "EngineConfig", engine_config)  # noqa: B010


def main() -> int:
    compress_timings()
    from waflow.server.__main__ import main as server_main

    return server_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
