"""Engine fairness: other contacts' latency while one contact floods (issue 16).

    python -m bench.engine_fairness [--flood 1000] [--others 60] [--rate 20] [--cap N] [--no-pg]

One contact's `--flood` messages are in the inbox at once; then `--others` contacts each write one message, at
`--rate` per second, while an `EngineWorker` runs in the background (woken by `notify()` as the webhook
endpoint would). Each message goes through a one-node flow (a reply). Printed per database: the other contacts'
latency (inbox commit → the worker's round that applied it, from the events' `received_at` / `processed_at`),
p50 / p99 / max; what became of the flood (applied, set aside over the backlog cap); the replies queued for the
flooding contact. `--cap` sets `max_pending_per_contact` (default: the engine's, 100; a cap over the flood shows
the fair turns alone). The outbox dispatcher is not included.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from datetime import UTC, datetime

from sqlalchemy import func, select

from waflow.canonical import ContactRef, InboundMessage
from waflow.engine.flows.loader import load_flow_text
from waflow.engine.runtime import EngineConfig, EngineWorker, deploy_flow
from waflow.store import NewInboundEvent, Store
from waflow.store.tables import inbound_events, outbound_messages
from waflow.store.testing import PostgresUnavailable, sqlite_url, temporary_postgres_url

PNID = "106540352242922"
FLOODER = "34690000000"
FLOW = """
id: echo
triggers: [{any_first_message: true}]
start: say
nodes:
  say: {type: message, text: "got {{ message.text }}", next: fin}
  fin: {type: end}
"""


def _event(wa_id: str, n: int) -> NewInboundEvent:
    now = datetime.now(UTC)
    msg = InboundMessage(phone_number_id=PNID, message_id=f"wamid.f.{wa_id}.{n}", contact=ContactRef(wa_id=wa_id),
                         timestamp=now, type="text", text=f"m{n}")  # fmt: skip
    return NewInboundEvent.from_message(msg, now)


async def _insert(store: Store, rows: list[NewInboundEvent]) -> None:
    async with store.begin() as conn:
        for wa_id in {r.contact_key for r in rows}:
            await store.contacts.upsert_from_inbound(conn, PNID, ContactRef(wa_id=wa_id), None)
        await store.inbox.insert_events(conn, rows)


async def one(url: str, args: argparse.Namespace) -> None:
    store = Store.open(url)
    try:
        await store.upgrade()
        async with store.begin() as conn:
            await deploy_flow(conn, load_flow_text(FLOW))
        await _insert(store, [_event(FLOODER, n) for n in range(args.flood)])
        cap = {"max_pending_per_contact": args.cap} if args.cap else {}
        worker = EngineWorker(store, EngineConfig(poll_interval=0.01, **cap))
        others = [f"3469{n:07d}" for n in range(1, args.others + 1)]
        started = time.perf_counter()
        async with worker:
            for i, wa_id in enumerate(others):
                await asyncio.sleep(max(0.0, started + i / args.rate - time.perf_counter()))  # the offered pace
                await _insert(store, [_event(wa_id, 0)])
                worker.notify()
            async with asyncio.timeout(120):
                while True:  # bounded polling of the store: until nothing of the others is open
                    async with store.read() as conn:
                        left = (await conn.execute(select(func.count()).where(
                            inbound_events.c.contact_key.in_(others),
                            inbound_events.c.state.in_(["pending", "failed"])))).scalar_one()  # fmt: skip
                    if not left:
                        break
                    await asyncio.sleep(0.05)
        async with store.read() as conn:
            rows = list(await conn.execute(
                select(inbound_events.c.received_at, inbound_events.c.processed_at)
                .where(inbound_events.c.contact_key.in_(others))))  # fmt: skip
            flood = dict(list(await conn.execute(
                select(inbound_events.c.state, func.count())
                .where(inbound_events.c.contact_key == FLOODER).group_by(inbound_events.c.state))))  # fmt: skip
            replies = (await conn.execute(select(func.count()).where(
                outbound_messages.c.contact_key == FLOODER))).scalar_one()  # fmt: skip
        lat = sorted((p - r).total_seconds() * 1000 for r, p in rows)
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
        print(f"  others' latency: p50 {statistics.median(lat):7.1f} ms  p99 {p99:7.1f} ms  max {lat[-1]:7.1f} ms "
              f"({len(lat)} contacts, {args.rate:g}/s, beside a flood of {args.flood} from one contact)")
        print(f"  the flood: {flood.get('done', 0)} applied, {flood.get('dead', 0)} set aside over the backlog cap, "
              f"{flood.get('pending', 0) + flood.get('failed', 0)} still waiting; {replies} replies queued to it")
    finally:
        await store.close()


async def main(args: argparse.Namespace) -> None:
    print("SQLite (file, WAL)")
    with tempfile.TemporaryDirectory() as tmp:
        await one(sqlite_url(tmp), args)
    if args.no_pg:
        return
    try:
        async with temporary_postgres_url() as url:
            print("PostgreSQL")
            await one(url, args)
    except PostgresUnavailable as exc:
        print(f"PostgreSQL unreachable: {exc}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--flood", type=int, default=1000)
    parser.add_argument("--others", type=int, default=60)
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--cap", type=int, default=0, help="max_pending_per_contact (0: the default)")
    parser.add_argument("--no-pg", action="store_true")
    asyncio.run(main(parser.parse_args()))
