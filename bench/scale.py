"""Webhook ingest at a real business's size (issue 12): waflow on stores of 1k / 100k / 1M contacts, vs pywa.

    python -m bench.scale [--sizes 1k,100k,1m] [--dialects sqlite,postgres] [--rounds 3] [--seconds 4]
                          [--concurrency 64] [--quick]

Each size is a store seeded by `waflow.store.seeding` (contacts at the size, the other tables at the
audit's proportions: 2 inbound events, 1 outbound message, 3 status events per contact, a fifth as
many sessions, a tenth as many timers). Seeded stores are cached: SQLite as a file under
`$WAFLOW_SCALE_CACHE` (default `~/.cache/waflow-scale`), copied for each run so a run never changes
the cache; PostgreSQL in its own database `waflow_scale_<size>` (never the `test` database), left in
place and rebuilt when the schema revision differs.

Measured, side by side per dialect and size: signed single-message webhook POSTs/s, 64 connections
back to back, with DISTINCT senders — half existing contacts, half new ones — to waflow's webhook
tier (`python -m waflow.webhooks`, as `bench.webhooks_ingest` runs it, whose load generator and
server machinery this reuses), and pywa 4.5 + FastAPI on the same requests in the same run (the
ratio). Medians over rounds.

Not measured yet (the brief's part 2 asks for them too): the dispatcher at 1,000 msg/s over the big
outbound table and the API routes' medians through `waflow serve`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import sqlite3
import statistics
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from bench.webhooks_ingest import (
    PNID,
    RoundResult,
    Scenario,
    _envelope,
    pywa_argv,
    request_bytes,
    run_load,
    server,
    waflow_argv,
)
from waflow.store import Store
from waflow.store.migrate import head_revision
from waflow.store.seeding import SeedInfo, Sizes, seed_store

SIZES = {"1k": 1_000, "10k": 10_000, "100k": 100_000, "1m": 1_000_000}
DIALECTS = {"sqlite": "sqlite", "postgres": "postgresql", "postgresql": "postgresql"}


def sizes_for(contacts: int) -> Sizes:
    return Sizes.audit().scaled(contacts / Sizes.audit().contacts)


@dataclass(frozen=True)
class DistinctSenders(Scenario):
    """One text message per POST, each from another sender: even n an existing contact, odd n a new one."""

    contacts: int = 1_000

    @property
    def name(self) -> str:
        return "message x1, distinct senders"

    def build(self, first_event: int, count: int) -> list[bytes]:
        out = []
        for i in range(first_event, first_event + count):
            # existing: the seed's wa_ids (346 + 8 digits); new: 347 + 8 digits, never seeded
            wa_id = f"346{(i // 2) % self.contacts + 1:08d}" if i % 2 == 0 else f"347{i:08d}"
            contact = {"profile": {"name": "Ana"}, "wa_id": wa_id, "user_id": f"ES.{int(wa_id) * 7:020d}"}
            body = _envelope({
                "messaging_product": "whatsapp",
                "metadata": {"display_phone_number": "15550783881", "phone_number_id": PNID},
                "contacts": [contact],
                "messages": [{"from": wa_id, "id": f"wamid.SCALE{self.contacts}x{i:012d}", "timestamp": "1760000000",
                              "type": "text", "text": {"body": "Hola"}}],
            })  # fmt: skip
            out.append(request_bytes(body))
        return out


def _cache_dir() -> Path:
    path = Path(os.environ.get("WAFLOW_SCALE_CACHE", Path.home() / ".cache" / "waflow-scale"))
    path.mkdir(parents=True, exist_ok=True)
    return path


async def _seed(url: str, contacts: int) -> tuple[SeedInfo, float]:
    store = Store.open(url)
    try:
        await store.upgrade()
        info = await seed_store(store, sizes_for(contacts), phone_number_id=PNID)
        return info, info.seconds
    finally:
        await store.close()


@contextlib.asynccontextmanager
async def seeded_url(dialect: str, contacts: int, label: str) -> AsyncIterator[tuple[str, float | None]]:
    """A URL to a store seeded at `contacts` (a copy of the cache), and the seeding seconds if seeded now."""
    key = f"{label}-{head_revision()}"
    if dialect == "sqlite":
        cached = _cache_dir() / f"scale-{key}.db"
        seconds = None
        if not cached.exists():
            building = cached.with_suffix(".building")
            building.unlink(missing_ok=True)
            _info, seconds = await _seed(f"sqlite+aiosqlite:///{building}", contacts)
            db = sqlite3.connect(building)  # fold the WAL into the file, so the file alone is the store
            try:
                db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                db.close()
            os.replace(building, cached)
        with tempfile.TemporaryDirectory() as tmp:
            target = Path(tmp) / "scale.db"
            shutil.copyfile(cached, target)
            yield f"sqlite+aiosqlite:///{target}", seconds
        return
    async with _postgres_copy(contacts, label, key) as (url, seconds):
        yield url, seconds


@contextlib.asynccontextmanager
async def _postgres_copy(contacts: int, label: str, key: str) -> AsyncIterator[tuple[str, float | None]]:
    """`waflow_scale_<size>` (seeded once, marked with its schema revision), copied as a template per run."""
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    from waflow.store.testing import _admin_urls

    admin = _admin_urls()[0]
    name, run_name = f"waflow_scale_{label}", f"waflow_scale_{label}_run"
    engine = create_async_engine(admin, isolation_level="AUTOCOMMIT")
    seconds = None
    try:
        async with engine.connect() as conn:
            comment = (await conn.execute(text(
                "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = :n"), {"n": name}
            )).scalar_one_or_none()  # fmt: skip
            if comment != key:
                await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                await conn.execute(text(f'CREATE DATABASE "{name}"'))
                _info, seconds = await _seed(admin.set(database=name).render_as_string(False), contacts)
                await conn.execute(text(f"COMMENT ON DATABASE \"{name}\" IS '{key}'"))
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{run_name}" WITH (FORCE)'))
            await conn.execute(text(f'CREATE DATABASE "{run_name}" TEMPLATE "{name}"'))
        try:
            yield admin.set(database=run_name).render_as_string(False), seconds
        finally:
            async with engine.connect() as conn:
                await conn.execute(text(f'DROP DATABASE IF EXISTS "{run_name}" WITH (FORCE)'))
    finally:
        await engine.dispose()


async def _rounds(port: int, scenario: Scenario, args: argparse.Namespace, first: int) -> list[RoundResult]:
    results = []
    for _ in range(args.rounds):
        r = await asyncio.to_thread(run_load, port, scenario, first, args.concurrency, args.seconds, None, 4000.0)
        first += r.events_used + args.concurrency
        results.append(r)
    return results


def _median_rps(results: list[RoundResult]) -> float:
    return statistics.median(r.rps() for r in results)


async def run(args: argparse.Namespace) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    labels = [s.strip().lower() for s in args.sizes.split(",") if s.strip()]
    dialects = [DIALECTS[d.strip()] for d in args.dialects.split(",") if d.strip()]
    pywa: dict[str, float] = {}
    for label in labels:
        contacts = SIZES[label] if label in SIZES else int(label)
        scenario = DistinctSenders("message", 1, contacts=contacts)
        for dialect in dialects:
            async with seeded_url(dialect, contacts, label) as (url, seeded_s):
                argv, env = waflow_argv(url, "default")
                async with server(argv, env) as port:
                    results = await _rounds(port, scenario, args, 0)
            if label not in pywa and not args.no_pywa:
                argv, env = pywa_argv()
                async with server(argv, env) as port:
                    pywa[label] = _median_rps(await _rounds(port, scenario, args, 0))
            rps = _median_rps(results)
            p50 = statistics.median(r.pct(0.5) for r in results)
            p99 = statistics.median(r.pct(0.99) for r in results)
            rows.append({"size": label, "dialect": dialect, "seeded_s": seeded_s, "rps": rps, "p50": p50,
                         "p99": p99, "pywa": pywa.get(label)})  # fmt: skip
            print(_row(rows[-1]), flush=True)
    return rows


HEADER = (f"{'size':>6} {'database':<10} {'seeded':>8} {'waflow POST/s':>14} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'pywa POST/s':>12} {'ratio':>6}")  # fmt: skip


def _row(r: dict[str, object]) -> str:
    seeded = f"{r['seeded_s']:.1f} s" if isinstance(r["seeded_s"], float) else "cached"
    pywa = r["pywa"]
    rps = float(r["rps"])  # type: ignore[arg-type]
    ratio = f"{rps / pywa:.2f}" if isinstance(pywa, float) and pywa else "-"
    pywa_s = f"{pywa:,.0f}" if isinstance(pywa, float) else "-"
    return (f"{r['size']:>6} {r['dialect']:<10} {seeded:>8} {rps:>14,.0f} {float(r['p50']):>8.1f} "  # type: ignore[arg-type]
            f"{float(r['p99']):>8.1f} {pywa_s:>12} {ratio:>6}")  # type: ignore[arg-type]  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1k,100k,1m")
    parser.add_argument("--dialects", default="sqlite,postgres")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--no-pywa", action="store_true")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 1k contacts, 1 round of 1 s, SQLite")
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.rounds, args.seconds = "1k", 1, 1.0
        if "--dialects" not in (argv or []):
            args.dialects = "sqlite"
    print("webhook ingest at scale: single-message POSTs, distinct senders (half new), "
          f"{args.concurrency} connections, {args.rounds} round(s) x {args.seconds:.0f} s, medians; "
          f"{os.cpu_count()} CPUs shared", flush=True)  # fmt: skip
    print(HEADER, flush=True)
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
