"""Faults: the crash run's conversations while the emulator answers sends with 5xx, 429/130429, 131056,
timeouts and dropped connections, and the access token expires mid-run (rotated: the new one is written to
the file `token = "file:..."` reads). Same verdict, and every message's tries stay within their budgets."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from sqlalchemy import func, select

from waflow.store.tables import send_attempts

from .harness import MAX_ATTEMPTS, deployment, judge, run_conversations, wait_settled
from .report import Check, Result

# probabilities per send; 131000 is retried at most 3 times by its own bound, so it stays rare
FAULTS = {
    "error_rates": {130429: 0.05, 131056: 0.03, 131000: 0.02},
    "server_error_rate": 0.04,  # a proxy's 502 with an HTML body
    "timeout_rate": 0.02,  # the emulator holds the request past the client's read timeout
    "drop_rate": 0.03,  # the socket closes without an answer
}


async def faults(work: Path, *, conversations: int, over_s: float) -> Result:
    rates = ", ".join(f"{k} {v:.0%}" for k, v in FAULTS["error_rates"].items())  # type: ignore[attr-defined]
    tried = (f"{conversations} pizza orders over {over_s:.0f} s; sends fail: {rates}, 5xx 4%, timeouts 2%, "
             f"dropped connections 3%; the token expires and is rotated (file:) mid-run")
    result = Result("faults", tried)
    t0 = time.monotonic()
    # a 10 s unknown-outcome grace (not the suite's 30 s, `proc.py` says why): no process is killed here
    async with deployment(work, emulator={"throughput_mps": 200.0},
                          env={"WAFLOW_RELIABILITY_UNKNOWN_GRACE_S": "10"}) as dep:
        dep.emu.faults.set(**FAULTS)

        async def rotate() -> None:
            await asyncio.sleep(over_s / 2)
            dep.rotate_token()

        rotation = asyncio.create_task(rotate())
        convs = await run_conversations(dep.emu, conversations, over_s=over_s, prefix="3462", timeout=180)
        await rotation
        snap = await wait_settled(dep, [c.user.wa_id for c in convs], timeout=120)
        dep.emu.faults.clear()
        verdict = judge(dep.emu, convs, snap, max_attempts=MAX_ATTEMPTS)
        store = await dep.open_store()
        try:
            async with store.read() as conn:
                by_outcome: dict[str, int] = dict((await conn.execute(
                    select(send_attempts.c.outcome, func.count()).group_by(send_attempts.c.outcome))).all())
        finally:
            await store.close()
        tries = sum(by_outcome.values())
        failed_tries = tries - int(by_outcome.get("accepted", 0))
        rotated = len(dep.tokens) == 1
        result.checks = [
            Check("faults were met", failed_tries > 0 and rotated,
                  f"{failed_tries} failed tries of {tries} ({', '.join(f'{k} {v}' for k, v in by_outcome.items())});"
                  f" token rotated {len(dep.tokens)}×"),
            *verdict.checks,
        ]
        result.notes += verdict.notes
    result.seconds = time.monotonic() - t0
    return result
