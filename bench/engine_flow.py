"""Flow engine throughput: inbound messages/s through a 5-node flow (event → session state → replies written).

    python -m bench.engine_flow [--contacts 2000] [--messages 5] [--stored 100000] [--batch N] [--runs 3] [--no-pg]

Each run uses a fresh database holding `--stored` sessions (ended ones, plus the active contacts' sessions
waiting at a question). The inbox is then filled with `--messages` answers per active contact, and one
`EngineWorker` applies them: per event question-reply → set → condition → message → question again
(5 nodes, 2 outbound rows, the session updated, the event marked done, all in the batch's transaction).
The outbox dispatcher is not included. Step latency = the wall time of the worker round that applied the
event (SQLite: the batch's one transaction; PostgreSQL: the round's contacts, each in its own transaction, in
parallel). CPU = this process's `process_time` per message. Prints medians over `--runs`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from datetime import UTC, datetime

from sqlalchemy import insert

from waflow.canonical import ContactRef, InboundMessage
from waflow.engine.flows.loader import load_flow_text
from waflow.engine.runtime import EngineConfig, EngineWorker, deploy_flow
from waflow.engine.runtime.deploy import flow_versions
from waflow.store import NewInboundEvent, Store
from waflow.store.tables import contacts, sessions
from waflow.store.testing import PostgresUnavailable, sqlite_url, temporary_postgres_url

PNID = "106540352242922"
FLOW = """
id: bench
triggers: [{any_first_message: true}]
start: ask
nodes:
  ask: {type: question, text: "What would you like?", save_as: item, next: calc}
  calc: {type: set, vars: {count: "{{ (vars.count or 0) + 1 }}"}, next: check}
  check:
    type: condition
    branches: [{if: "vars.count > 1000000", next: done}]
    else: reply
  reply: {type: message, text: "Got {{ vars.item }} (#{{ vars.count }}), {{ contact.name }}", next: ask}
  done: {type: end}
"""


def wa(i: int) -> str:
    return f"3460{i:07d}"


async def populate(store: Store, stored: int, active: int) -> None:
    """`stored` sessions: the first `active` contacts wait at `ask`, the rest have ended."""
    async with store.begin() as conn:
        await deploy_flow(conn, load_flow_text(FLOW))
        record = await flow_versions.active(conn, "bench")
        assert record is not None
        now = datetime.now(UTC)
        for start in range(0, stored, 5000):
            rows = range(start, min(stored, start + 5000))
            await conn.execute(insert(contacts), [
                {"id": i + 1, "phone_number_id": PNID, "contact_key": wa(i), "wa_id": wa(i), "profile_name": f"U{i}",
                 "last_inbound_at": now, "opted_out": False, "created_at": now, "updated_at": now} for i in rows
            ])  # fmt: skip
            await conn.execute(insert(sessions), [
                {"contact_id": i + 1, "flow_id": "bench", "flow_version": record.content_hash,
                 "state": "waiting" if i < active else "ended", "current_node": "ask", "vars": {"count": 0},
                 "waiting_for": "reply" if i < active else None, "step_count": 1, "started_at": now,
                 "updated_at": now, "ended_at": None if i < active else now, "end_reason": None if i < active else "x",
                 "runtime": {"seq": 1}, "expires_at": now.replace(year=now.year + 1)} for i in rows
            ])  # fmt: skip


async def fill_inbox(store: Store, active: int, messages: int, run: int) -> int:
    now = datetime.now(UTC)
    events = []
    for m in range(messages):
        for i in range(active):
            msg = InboundMessage(phone_number_id=PNID, message_id=f"wamid.b{run}.{m}.{i}",
                                 contact=ContactRef(wa_id=wa(i), profile_name=f"U{i}"), timestamp=now, type="text",
                                 text=f"pizza {m}", content={"body": f"pizza {m}"})  # fmt: skip
            events.append(NewInboundEvent.from_message(msg, now))
    for start in range(0, len(events), 5000):
        async with store.begin() as conn:
            await store.inbox.insert_events(conn, events[start : start + 5000])
    return len(events)


async def one_run(url: str, args: argparse.Namespace, run: int) -> tuple[float, float, float, float]:
    store = Store.open(url, pool_size=max(8, args.concurrency + 2))
    try:
        await store.upgrade()
        await populate(store, args.stored, args.contacts)
        total = await fill_inbox(store, args.contacts, args.messages, run)
        # the default poll interval: it also paces the worker's maintenance (failed sends, stuck sessions), which
        # a round runs when it is due, as in a serving process
        config = EngineConfig(batch_size=args.batch, concurrency=args.concurrency)
        worker = EngineWorker(store, config)
        latencies: list[float] = []
        started = time.perf_counter()
        cpu = time.process_time()
        done = 0
        while done < total:
            t0 = time.perf_counter()
            count = await worker.run_once()
            # SQLite: the batch's one transaction; PostgreSQL: contacts run in parallel, each in its own
            # transaction, and a round bounds each one. Either way every event of the round waited this long.
            latencies += [time.perf_counter() - t0] * count
            done += count
            if count == 0:
                raise RuntimeError(f"stalled at {done}/{total}")
        seconds = time.perf_counter() - started
        cpu_us = (time.process_time() - cpu) / total * 1e6  # this process only (PostgreSQL's own CPU is not in it)
        latencies.sort()
        p50 = latencies[len(latencies) // 2] * 1000
        p99 = latencies[int(len(latencies) * 0.99)] * 1000
        return total / seconds, p50, p99, cpu_us
    finally:
        await store.close()


async def bench(url_factory: str, args: argparse.Namespace) -> None:
    results = []
    for run in range(args.runs):
        if url_factory == "sqlite":
            with tempfile.TemporaryDirectory() as tmp:
                results.append(await one_run(sqlite_url(tmp), args, run))
        else:
            async with temporary_postgres_url() as url:
                results.append(await one_run(url, args, run))
        rate, p50, p99, cpu_us = results[-1]
        print(f"  run {run + 1}: {rate:8.0f} msg/s  p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  cpu {cpu_us:5.0f} µs/msg  "
              f"(load {os.getloadavg()[0]:.2f})")  # fmt: skip
    rate, p50, p99, cpu_us = (statistics.median(r[i] for r in results) for i in range(4))
    print(f"{url_factory:10s} median: {rate:8.0f} msg/s  p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  "
          f"cpu {cpu_us:5.0f} µs/msg  "
          f"({args.contacts} contacts × {args.messages} messages, {args.stored} stored sessions, "
          f"batch {args.batch})")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contacts", type=int, default=2000)
    parser.add_argument("--messages", type=int, default=5)
    parser.add_argument("--stored", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=EngineConfig().batch_size)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-pg", action="store_true")
    args = parser.parse_args()

    async def go() -> None:
        print("SQLite (file, WAL, synchronous=FULL)")
        await bench("sqlite", args)
        if not args.no_pg:
            print("PostgreSQL")
            try:
                await bench("postgresql", args)
            except PostgresUnavailable as exc:
                print(f"  skipped: {exc}")

    asyncio.run(go())


if __name__ == "__main__":
    main()
