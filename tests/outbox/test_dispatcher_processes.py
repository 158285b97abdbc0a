"""Dispatcher processes: SIGKILL mid-burst and restart (SQLite); two processes sharing PostgreSQL + Redis."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from waflow.canonical import DeliveryStatus
from waflow.outbox import max_in_window
from waflow.store import Store, build_callback_data
from waflow.store.tables import send_attempts
from waflow.store.testing import PostgresUnavailable, services_required, sqlite_url, temporary_postgres_url

PNID = "106540352242922"
S = DeliveryStatus


async def start_worker(db: str, base_url: str, token: str, *extra: str) -> asyncio.subprocess.Process:
    args = ["-m", "waflow.outbox", "--db", db, "--phone-number-id", PNID, "--token", token, "--base-url", base_url,
            "--no-window", "--read-timeout", "1", *extra]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = await asyncio.create_subprocess_exec(sys.executable, *args, stdout=asyncio.subprocess.PIPE, env=env)
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 30)
    assert b"dispatcher running" in line, line
    return proc


async def stop_worker(proc: asyncio.subprocess.Process) -> int:
    """SIGTERM; returns how many messages the process sent (it prints `sent N` on the way out)."""
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
    assert proc.stdout is not None
    out = (await asyncio.wait_for(proc.stdout.read(), 20)).decode()
    await asyncio.wait_for(proc.wait(), 20)
    sent = [int(line.split()[1]) for line in out.splitlines() if line.startswith("sent ")]
    return sent[-1] if sent else 0


async def enqueue_burst(env: Any, users: list[str], per_user: int) -> dict[str, list[str]]:
    from waflow.canonical import OutboundMessage

    expected: dict[str, list[str]] = defaultdict(list)
    async with env.store.begin() as conn:
        for n in range(per_user):
            for u in users:
                body = f"{u}-{n}"
                expected[u].append(body)
                await env.store.outbox.enqueue(conn, PNID, OutboundMessage(to=u, type="text", content={"body": body}),
                                               contact_key=u, business_initiated=False)
    return expected


def check_exactly_once_in_order(env: Any, rows: list[Any], expected: dict[str, list[str]]) -> None:
    counts = env.emu.sends_by_callback_data()
    assert all(r.status is not S.QUEUED and r.status is not S.FAILED for r in rows), [
        (r.id, r.status, r.error_text) for r in rows if r.status in (S.QUEUED, S.FAILED)]
    dupes = {r.id: counts.get(build_callback_data(r.id), 0) for r in rows}
    assert all(n == 1 for n in dupes.values()), {k: v for k, v in dupes.items() if v != 1}
    for u, bodies in expected.items():
        assert [m.content["body"] for m in env.emu.sent() if m.wa_id == u] == bodies


async def test_sigkill_mid_burst_then_restart_loses_nothing_and_sends_nothing_twice(
    sqlite_store: Store, outbox_environment_factory: Any, tmp_path: Path
) -> None:
    async with outbox_environment_factory(sqlite_store, enforce_window=False) as env:
        users = [f"3469{i:07d}" for i in range(40)]
        expected = await enqueue_burst(env, users, 6)
        db = sqlite_url(tmp_path)
        flags = ("--rate", "120", "--lease", "1.5", "--grace", "1.5", "--concurrency", "32")
        proc = await start_worker(db, env.emu.base_url, env.tokens[-1], *flags)
        try:
            async with asyncio.timeout(20):
                while len(env.emu.sent()) < 90:  # noqa: ASYNC110
                    await asyncio.sleep(0.005)
            proc.kill()  # SIGKILL: no cleanup, leases stay, outcomes in flight are lost
            await proc.wait()
        finally:
            if proc.returncode is None:
                proc.kill()
        before_restart = len(env.emu.sent())
        rows = await env.rows()
        unrecorded = [r for r in rows if r.claimed_by and r.status is S.QUEUED]
        proc = await start_worker(db, env.emu.base_url, env.tokens[-1], *flags)
        try:
            await env.wait_until(lambda rs: all(r.status is not S.QUEUED for r in rs), timeout=40)
        finally:
            await stop_worker(proc)
        await env.emu.webhooks_idle()
        rows = await env.rows()
        check_exactly_once_in_order(env, rows, expected)
        assert before_restart < len(rows) and len(env.emu.sent()) == len(rows)
        print(f"killed after {before_restart} sends; {len(unrecorded)} rows were leased at the kill")


async def test_two_processes_on_postgres_and_redis_share_80_per_s(
    outbox_environment_factory: Any, redis_client: Any, redis_prefix: str, redis_url: str
) -> None:
    try:
        async with temporary_postgres_url() as url:
            store = Store.open(url)
            await store.upgrade()
            try:
                await _two_processes(store, url, outbox_environment_factory, redis_url, redis_prefix)
            finally:
                await store.close()
    except PostgresUnavailable as exc:
        if services_required():
            pytest.fail(f"PostgreSQL unavailable (WAFLOW_REQUIRE_SERVICES=1): {exc}")
        pytest.skip(f"PostgreSQL unavailable: {exc}")


async def _two_processes(store: Store, url: str, outbox_environment_factory: Any, redis_url: str, prefix: str) -> None:
    async with outbox_environment_factory(store, enforce_window=False, throughput_mps=80.0) as env:
        users = [f"3470{i:07d}" for i in range(120)]
        flags = ("--rate", "80", "--concurrency", "24", "--redis", redis_url, "--redis-prefix", prefix,
                 "--lease", "10", "--grace", "5")
        procs = [await start_worker(url, env.emu.base_url, env.tokens[-1], *flags) for _ in range(2)]
        await asyncio.sleep(0.3)  # both are polling: the burst below is shared from its first message
        expected = await enqueue_burst(env, users, 2)  # 240 messages: 3 s at 80/s
        sent: list[int] = []
        try:
            await env.wait_until(lambda rs: all(r.status is not S.QUEUED for r in rs), timeout=30)
        finally:
            for p in procs:
                sent.append(await stop_worker(p))
        rows = await env.rows()
        check_exactly_once_in_order(env, rows, expected)
        async with store.read() as conn:
            throttled = (await conn.execute(
                select(func.count()).select_from(send_attempts).where(send_attempts.c.error_code == 130429)
            )).scalar_one()
        assert throttled == 0
        times = sorted(m.accepted_at for m in env.emu.sent())
        hist: dict[int, int] = defaultdict(int)
        for t in times:
            hist[int((t - times[0]) * 4)] += 1
        print("per 250 ms:", dict(hist))
        # Steady state: from one second in. A process's first sends also open its connection, after their slot
        # was booked, so they leave late and bunch with the next ones; counted from the very first send, that
        # shortened span read as 87 msg/s once on a loaded machine while no second held more than 80.
        steady = [t for t in times if t >= times[0] + 1.0]
        rate = (len(steady) - 1) / (steady[-1] - steady[0])
        busiest = max_in_window(round(t * 1_000_000) for t in times)
        print(f"steady rate {rate:.1f} msg/s over {steady[-1] - steady[0]:.2f} s; per process {sent}; "
              f"busiest second {busiest}")
        assert 76.0 <= rate <= 84.0, rate
        assert len(sent) == 2 and all(n > 0 for n in sent) and sum(sent) == len(rows), sent

