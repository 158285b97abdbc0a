"""Crash: simulated users order pizzas while `waflow serve` (SQLite) — or one of a serve and a worker sharing
PostgreSQL — is killed with SIGKILL at random moments and restarted at once."""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path

from waflow.store.testing import PostgresUnavailable, services_required, temporary_postgres_url

from .harness import deployment, judge, run_conversations, wait_settled
from .report import Check, Result

EMULATOR = {"throughput_mps": 200.0}


async def _kill_at_random(procs: list, kills: int, within_s: float, seed: int) -> list[str]:  # type: ignore[type-arg]
    """SIGKILL a random process at `kills` random moments of the first `within_s` seconds; restart each at once."""
    rng = random.Random(seed)
    moments = sorted(rng.uniform(0.15 * within_s, within_s) for _ in range(kills))
    t0 = time.monotonic()
    log = []
    for at in moments:
        await asyncio.sleep(max(0.0, at - (time.monotonic() - t0)))
        proc = rng.choice(procs)
        await proc.kill()
        started = time.monotonic()
        await proc.start()
        log.append(f"{proc.role} killed at {at:.1f} s, back in {time.monotonic() - started:.1f} s")
    return log


async def crash(work: Path, *, conversations: int, kills: int, over_s: float, postgres: bool = False,
                seed: int = 1) -> Result:
    label = "crash (PostgreSQL: serve + worker)" if postgres else "crash (SQLite serve)"
    tried = (f"{conversations} pizza orders (4 turns each) over {over_s:.0f} s; SIGKILL "
             f"{'serve or worker' if postgres else 'waflow serve'} {kills}× at random moments, restart at once")
    result = Result(label, tried)
    t0 = time.monotonic()
    if postgres:
        try:
            async with temporary_postgres_url() as url:
                await _crash(result, work, url, conversations, kills, over_s, seed, ("serve", "worker"))
        except PostgresUnavailable as exc:
            if services_required():
                raise
            result.skipped = f"PostgreSQL unavailable: {exc}"
    else:
        await _crash(result, work, None, conversations, kills, over_s, seed, ("serve",))
    result.seconds = time.monotonic() - t0
    return result


async def _crash(result: Result, work: Path, url: str | None, conversations: int, kills: int, over_s: float,
                 seed: int, roles: tuple[str, ...]) -> None:
    server = {"run_engine": True, "run_dispatcher": True}
    async with deployment(work, roles=roles, store_url=url, emulator=EMULATOR, server=server) as dep:
        killer = asyncio.create_task(_kill_at_random(dep.procs, kills, over_s, seed))
        convs = await run_conversations(dep.emu, conversations, over_s=over_s, timeout=180)
        kill_log = await killer
        users = [c.user.wa_id for c in convs]
        snap = await wait_settled(dep, users, timeout=120)
        verdict = judge(dep.emu, convs, snap)
        result.checks = [Check("SIGKILLs survived", len(kill_log) == kills, f"{len(kill_log)}/{kills}"),
                         *verdict.checks]
        result.notes += verdict.notes + kill_log
