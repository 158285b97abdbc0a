"""Outbox dispatch rate against the emulator, the store's per-message overhead, and pywa's plain loop beside it.

    python -m bench.outbox_dispatch [--rounds 3] [--seconds 3] [--limits 80,1000]

For each throughput limit the emulator (a separate process, its own limit set to the same value, so it
answers 130429 to anything faster) receives `limit x seconds` text messages to distinct recipients:

- waflow: the messages are enqueued in one transaction (`enqueue_many`) into a fresh SQLite store, then
  an `OutboxDispatcher` (rate = the limit) sends them; msg/s = messages / (first send → last outcome
  committed). 130429 answers are counted from `send_attempts`. CPU/msg is `time.process_time()` of this
  process (the dispatcher alone: the emulator is another process) over the run, per message: on a shared
  machine it moves far less than msg/s does.
- store overhead: enqueue (one transaction, one multi-row insert), claim (`claim_due`, batches of 128)
  and record (`Recorder`: attempt + accepted, batched) of the same number of rows without any HTTP,
  wall-clock µs/msg (fsync waits included).
- pywa 4.5: `WhatsApp(...).send_message(to, text)` in a plain sequential loop to the same emulator;
  msg/s accepted, its 130429 count (it has no limiter) and its CPU/msg.

Medians over the rounds. The 1-minute load average before each round is printed: a figure taken with
load > 2 (on this 2-CPU machine) is a figure taken on a busy machine.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from waflow.canonical import OutboundMessage
from waflow.cloudapi import CloudAPIClient, Timeouts
from waflow.outbox import DispatcherConfig, OutboxDispatcher, make_limiters
from waflow.outbox.recorder import Accepted, Attempt, Recorder
from waflow.store import Store
from waflow.store.outbox import NewOutbound
from waflow.store.tables import outbound_messages, send_attempts
from waflow.store.testing import sqlite_url

PNID = "106540352242922"


def _serve_emulator(conn: Any, limit: float, templates: tuple[dict[str, Any], ...]) -> None:
    from waflow.emulator import EmulatorConfig, StatusDelays, TemplateSeed, run_emulator

    async def main() -> None:
        cfg = EmulatorConfig(throughput_mps=limit, enforce_window=False, status_delays=StatusDelays(read=None),
                             templates=[TemplateSeed(**t) for t in templates])
        async with run_emulator(cfg) as emu:
            conn.send((emu.base_url, emu.config.access_token))
            await asyncio.get_running_loop().run_in_executor(None, conn.recv)

    asyncio.run(main())


@asynccontextmanager
async def emulator(limit: float, templates: tuple[dict[str, Any], ...] = ()) -> AsyncIterator[tuple[str, str]]:
    """The emulator in a process of its own (`templates`: `TemplateSeed` fields), yielding (base URL, token)."""
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_serve_emulator, args=(child, limit, templates), daemon=True)
    proc.start()
    try:
        yield await asyncio.get_running_loop().run_in_executor(None, parent.recv)
    finally:
        parent.send("stop")
        proc.join(5)
        if proc.is_alive():
            proc.terminate()


def _numbers(n: int, offset: int) -> list[str]:
    return [f"34{600000000 + offset + i}" for i in range(n)]


async def _enqueue(store: Store, numbers: list[str]) -> float:
    """One transaction, one multi-row insert (`enqueue_many`, what campaigns use)."""
    items = [
        NewOutbound(OutboundMessage(to=to, type="text", content={"body": "bench"}), contact_key=to,
                    business_initiated=False)
        for to in numbers
    ]
    started = time.perf_counter()
    async with store.begin() as conn:
        await store.outbox.enqueue_many(conn, PNID, items)
    return time.perf_counter() - started


def dispatcher_config(limit: float) -> DispatcherConfig:
    """The dispatcher's settings in these benches: rate = the limit, no 24 h window or template checks."""
    return DispatcherConfig(rate_per_s=limit, concurrency=64 if limit <= 100 else 128, claim_batch=256,
                            enforce_window=False, check_templates=False)


async def dispatch_run(
    store: Store,
    base_url: str,
    token: str,
    limit: float,
    numbers: list[str],
    wait: Callable[[OutboxDispatcher, int], Awaitable[None]] | None = None,
) -> tuple[float, int, float, int]:
    """Enqueue one text message to each of `numbers` into `store` (upgraded; it may hold other rows), send them
    with an `OutboxDispatcher` at `limit`; msg/s, 130429 answers, CPU µs/msg of this process, record commits.
    Only this run's rows are counted (ids above the highest before the enqueue). The run ends when
    `wait(dispatcher, highest id before)` returns (default: `dispatcher.drain`, nothing queued at all)."""
    n = len(numbers)
    client = CloudAPIClient(phone_number_id=PNID, token=token, base_url=base_url, timeouts=Timeouts(total=10))
    try:
        async with store.read() as conn:
            highest = select(func.coalesce(func.max(outbound_messages.c.id), 0))
            before = int((await conn.execute(highest)).scalar_one())
        await _enqueue(store, numbers)
        dispatcher = OutboxDispatcher(store, client, limiters=make_limiters(None), config=dispatcher_config(limit))
        cpu = time.process_time()
        async with dispatcher.running():
            if wait is None:
                await dispatcher.drain(n / limit * 3 + 30)
            else:
                await wait(dispatcher, before)
            done = datetime.now(UTC)  # the last outcome is committed
        cpu_us = (time.process_time() - cpu) / n * 1e6
        mine = send_attempts.c.outbound_id > before
        async with store.read() as conn:
            throttled = (await conn.execute(
                select(func.count()).select_from(send_attempts).where(mine, send_attempts.c.error_code == 130429)
            )).scalar_one()
            first_send = (await conn.execute(select(func.min(send_attempts.c.started_at)).where(mine))).scalar_one()
        # as documented above: from the first send (not the dispatcher's start-up and first claim) to the last
        # outcome committed
        elapsed = (done - first_send).total_seconds()
        return n / elapsed, int(throttled), cpu_us, dispatcher.recorder.commits
    finally:
        await client.aclose()


async def waflow_round(
    base_url: str, token: str, limit: float, n: int, offset: int, tmp: Path
) -> tuple[float, int, float, int]:
    """msg/s, 130429 answers, CPU µs/msg of this process, record commits (a fresh SQLite store)."""
    store = Store.open(sqlite_url(tmp, f"dispatch-{offset}.db"))
    await store.upgrade()
    try:
        return await dispatch_run(store, base_url, token, limit, _numbers(n, offset))
    finally:
        await store.close()


async def overhead_round(n: int, tmp: Path, offset: int) -> tuple[float, float, float, float]:
    """Wall µs/msg for enqueue, claim and record, without HTTP; and the CPU µs/msg of all three together."""
    store = Store.open(sqlite_url(tmp, f"overhead-{offset}.db"))
    await store.upgrade()
    try:
        cpu = time.process_time()
        enqueue_s = await _enqueue(store, _numbers(n, offset))
        cfg = DispatcherConfig(enforce_window=False, check_templates=False)
        dispatcher = OutboxDispatcher(store, CloudAPIClient(phone_number_id=PNID, token="x"), config=cfg)
        claim_s = record_s = 0.0
        recorder = Recorder(store, dispatcher.claimer)
        recorder.start()
        now = datetime.now(UTC)
        remaining = n
        while remaining:
            t0 = time.perf_counter()
            claimed = await dispatcher.claim_due(128)
            t1 = time.perf_counter()
            for item in claimed:
                recorder.submit(Accepted(item.row.record.id, f"wamid.bench{item.row.record.id}",
                                         Attempt("accepted", now, now, http_status=200)))
            await recorder.flush()
            record_s += time.perf_counter() - t1
            claim_s += t1 - t0
            remaining -= len(claimed)
        await recorder.stop()
        cpu_us = (time.process_time() - cpu) / n * 1e6
        return enqueue_s / n * 1e6, claim_s / n * 1e6, record_s / n * 1e6, cpu_us
    finally:
        await store.close()


async def pywa_round(base_url: str, token: str, n: int, offset: int) -> tuple[float, int, float]:
    """msg/s accepted, 130429 answers, CPU µs/msg of this process."""
    from pywa_async import WhatsApp  # type: ignore[attr-defined]
    from pywa_async.errors import WhatsAppError

    wa = WhatsApp(phone_id=PNID, token=token, api_version="23.0")
    wa.api._session.base_url = f"{base_url}/v23.0"
    accepted = throttled = 0
    started, cpu = time.perf_counter(), time.process_time()
    for to in _numbers(n, offset):
        try:
            await wa.send_message(to=to, text="bench")
            accepted += 1
        except WhatsAppError as exc:
            if exc.code == 130429:
                throttled += 1
    elapsed = time.perf_counter() - started
    cpu_us = (time.process_time() - cpu) / n * 1e6
    await wa.api._session.aclose()
    return accepted / elapsed, throttled, cpu_us


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0, help="messages per round = limit x seconds")
    parser.add_argument("--limits", default="80,1000")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        for limit in [float(x) for x in args.limits.split(",")]:
            n = int(limit * args.seconds)
            ours: list[float] = []
            theirs: list[float] = []
            ours_cpu: list[float] = []
            theirs_cpu: list[float] = []
            ours_429 = theirs_429 = 0
            overheads: list[tuple[float, float, float, float]] = []
            async with emulator(limit) as (base_url, token):
                for r in range(args.rounds):
                    offset = int(limit) * 10**5 + r * n * 3
                    load = os.getloadavg()[0]
                    rate, throttled, cpu_us, commits = await waflow_round(base_url, token, limit, n, offset, tmp)
                    await asyncio.sleep(1.2)  # let the emulator's bucket refill between contenders
                    prate, pthrottled, pcpu_us = await pywa_round(base_url, token, n, offset + n)
                    await asyncio.sleep(1.2)
                    overheads.append(await overhead_round(n, tmp, offset + 2 * n))
                    ours.append(rate)
                    theirs.append(prate)
                    ours_cpu.append(cpu_us)
                    theirs_cpu.append(pcpu_us)
                    ours_429 += throttled
                    theirs_429 += pthrottled
                    print(f"limit {limit:5.0f}  round {r + 1}: waflow {rate:7.1f} msg/s ({throttled} x 130429, "
                          f"{cpu_us:.0f} µs CPU/msg, {commits} record commits)   pywa loop {prate:7.1f} msg/s "
                          f"accepted ({pthrottled} x 130429, {pcpu_us:.0f} µs CPU/msg)   load {load:.2f}")
            med = statistics.median(ours)
            pmed = statistics.median(theirs)
            enq, claim, rec, store_cpu = (statistics.median(o[i] for o in overheads) for i in range(4))
            print(f"== limit {limit:.0f} msg/s, {n} messages x {args.rounds} rounds: waflow median {med:.1f} msg/s "
                  f"({med / limit:.1%} of the limit, {ours_429} x 130429, "
                  f"{statistics.median(ours_cpu):.0f} µs CPU/msg); pywa plain loop median {pmed:.1f} msg/s "
                  f"accepted ({theirs_429} x 130429, {statistics.median(theirs_cpu):.0f} µs CPU/msg); "
                  f"waflow/pywa {med / pmed:.2f}")
            print(f"   store overhead per message (SQLite, wall): enqueue {enq:.0f} µs + claim {claim:.0f} µs + record "
                  f"{rec:.0f} µs = {enq + claim + rec:.0f} µs; CPU {store_cpu:.0f} µs/msg for all three")


if __name__ == "__main__":
    asyncio.run(main())
