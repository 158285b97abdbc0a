"""Inbox write throughput: bulk deduplicated inserts with group commits.

    python -m bench.store_inbox [--events 20000] [--batch 100 250 500] [--runs 5] [--no-pg]

Each batch is one transaction (`INSERT ... ON CONFLICT (dedup_key) DO NOTHING RETURNING`, then
COMMIT with its fsync: SQLite in WAL with synchronous=FULL; PostgreSQL with its defaults). One in
ten events repeats an earlier key (a redelivered webhook). Prints the median events/s per batch
size and backend over `--runs` runs, each on a fresh database.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from datetime import UTC, datetime

from waflow.canonical import ContactRef, InboundMessage
from waflow.store import NewInboundEvent, Store
from waflow.store.testing import PostgresUnavailable, sqlite_url, temporary_postgres_url


def make_events(count: int, run: int) -> list[NewInboundEvent]:
    now = datetime.now(UTC)
    out: list[NewInboundEvent] = []
    for i in range(count):
        n = i - 7 if i % 10 == 9 else i  # every tenth event is a duplicate of a recent one
        message = InboundMessage(
            phone_number_id="106540352242922",
            message_id=f"wamid.bench{run}.{n:08d}",
            contact=ContactRef(wa_id=f"3460{n % 5000:07d}", profile_name="Bench User"),
            timestamp=now,
            type="text",
            text=f"message number {n}, ¿qué tal?",
            content={"body": f"message number {n}, ¿qué tal?"},
        )
        out.append(NewInboundEvent.from_message(message, now))
    return out


async def one_run(url: str, events: list[NewInboundEvent], batch: int) -> float:
    store = Store.open(url)
    try:
        await store.upgrade()
        inserted = 0
        started = time.perf_counter()
        for start in range(0, len(events), batch):
            async with store.begin() as conn:
                ids = await store.inbox.insert_events(conn, events[start : start + batch])
            inserted += sum(1 for i in ids if i is not None)
        elapsed = time.perf_counter() - started
        assert inserted == len({e.dedup_key for e in events}), "dedup miscounted"
        return len(events) / elapsed
    finally:
        await store.close()


async def bench_backend(name: str, events: int, batches: list[int], runs: int) -> None:
    for batch in batches:
        rates: list[float] = []
        for run in range(runs):
            rows = make_events(events, run)
            if name == "sqlite":
                with tempfile.TemporaryDirectory() as tmp:
                    rates.append(await one_run(sqlite_url(tmp, "bench.db"), rows, batch))
            else:
                async with temporary_postgres_url("waflow_bench") as url:
                    rates.append(await one_run(url, rows, batch))
        print(
            f"{name:10s} batch={batch:4d}  median {statistics.median(rates):9,.0f} events/s  "
            f"(min {min(rates):,.0f}, max {max(rates):,.0f}, {runs} runs x {events} events)",
            flush=True,
        )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--batch", type=int, nargs="+", default=[100, 250, 500])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--no-pg", action="store_true")
    args = parser.parse_args()
    await bench_backend("sqlite", args.events, args.batch, args.runs)
    if not args.no_pg:
        try:
            await bench_backend("postgresql", args.events, args.batch, args.runs)
        except PostgresUnavailable as exc:
            print(f"postgresql skipped: {exc}")


if __name__ == "__main__":
    asyncio.run(main())
