"""Replies before bulk: conversation replies sent while a campaign drains, at a number's limit (issue 13).

    python -m bench.outbox_priority [--limit 80] [--recipients 2400] [--campaigns 1] [--seconds 20]
                                    [--interval 0.1] [--warmup 2] [--concurrency N]

The emulator (its own process, enforcing the same limit: 130429 beyond it) has the campaign's template.
A fresh SQLite store gets `--recipients` campaign rows (`enqueue_campaign`, one transaction; split over
`--campaigns` campaigns started together), then an `OutboxDispatcher` in this process (rate = the limit,
the settings of `bench.outbox_dispatch`) starts sending them. After `--warmup` s, one conversation reply
(a text of no campaign, to a new recipient each, as a flow writes it) is enqueued every `--interval` s for
`--seconds` s, with the dispatcher notified as the engine does. The run ends when every reply is accepted
(the campaign may still be sending: it is stopped there).

What a reply still waits for is the dispatcher's claim-ahead: up to `concurrency` claimed rows wait at the
throughput limiter (64 at 80 msg/s: up to 0.8 s of sends), and a reply claimed next waits behind them.

Printed: the replies' latency (enqueue → the emulator's 200, from `created_at` and the accepted
`send_attempts.finished_at`) median / p95 / max; the campaigns' rate while the replies were sent (rows
accepted in the reply window / its length) and over the whole run, each campaign's share of the reply
window (interleaving: campaigns started together should share it evenly); 130429 answers.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, select

from bench.outbox_dispatch import dispatcher_config, emulator
from waflow.canonical import OutboundMessage
from waflow.cloudapi import CloudAPIClient, Timeouts
from waflow.outbox import OutboxDispatcher, enqueue_campaign, make_limiters
from waflow.store import Store
from waflow.store.tables import outbound_messages, send_attempts
from waflow.store.testing import sqlite_url
from waflow.store.types import as_utc

PNID = "106540352242922"
TEMPLATE = "spring_sale"


# the campaign's template, seeded into the emulator (`TemplateSeed` fields)
SEED = {"name": TEMPLATE, "category": "MARKETING",
        "components": [{"type": "BODY", "text": "Spring sale, {{1}}: 20% off"}]}


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


async def _accepted_times(store: Store, ids: list[int]) -> dict[int, tuple[datetime, datetime]]:
    """outbox id -> (enqueued, accepted by the emulator) of those of `ids` that were accepted."""
    o, a = outbound_messages, send_attempts
    stmt = (
        select(o.c.id, o.c.created_at, a.c.finished_at)
        .join(a, a.c.outbound_id == o.c.id)
        .where(o.c.id.in_(ids), a.c.outcome == "accepted")
    )
    async with store.read() as conn:
        return {int(r[0]): (as_utc(r[1]), as_utc(r[2])) for r in await conn.execute(stmt)}


async def run(args: argparse.Namespace, tmp: Path) -> None:
    limit = float(args.limit)
    store = Store.open(sqlite_url(tmp, "priority.db"))
    await store.upgrade()
    async with emulator(limit, (SEED,)) as (base_url, token):
        client = CloudAPIClient(phone_number_id=PNID, token=token, base_url=base_url, timeouts=Timeouts(total=10))
        try:
            per = args.recipients // args.campaigns
            campaign_ids = []
            for c in range(args.campaigns):
                rows = [{"phone": f"34{610000000 + c * per + i}", "name": f"c{i}"} for i in range(per)]
                campaign_ids.append(await enqueue_campaign(store, name=f"sale {c + 1}", phone_number_id=PNID,
                                                           template=TEMPLATE, language="en_US", contacts=rows,
                                                           params=["{name}"]))
            config = dispatcher_config(limit)
            if args.concurrency:
                config = dataclasses.replace(config, concurrency=args.concurrency)
            dispatcher = OutboxDispatcher(store, client, limiters=make_limiters(None), config=config)
            load = os.getloadavg()[0]
            reply_ids: list[int] = []
            async with dispatcher.running():
                started = time.monotonic()
                await asyncio.sleep(args.warmup)
                window_start = datetime.now(UTC)
                n_replies = round(args.seconds / args.interval)
                for i in range(n_replies):
                    due = started + args.warmup + i * args.interval
                    await asyncio.sleep(max(0.0, due - time.monotonic()))
                    message = OutboundMessage(to=f"34{690000000 + i}", type="text", content={"body": f"reply {i}"})
                    async with store.begin() as conn:
                        reply_ids.append(await store.outbox.enqueue(conn, PNID, message, contact_key=message.to or "",
                                                                    business_initiated=False))
                    dispatcher.notify()
                window_end = datetime.now(UTC)
                deadline = time.monotonic() + args.recipients / limit + 30
                while len(await _accepted_times(store, reply_ids)) < len(reply_ids) and time.monotonic() < deadline:  # noqa: ASYNC110
                    await asyncio.sleep(0.1)
                ended = datetime.now(UTC)
        finally:
            await client.aclose()
    replies = await _accepted_times(store, reply_ids)
    latencies = [(done - queued).total_seconds() * 1000 for queued, done in replies.values()]
    o, a = outbound_messages, send_attempts
    async with store.read() as conn:
        per_campaign: dict[int, tuple[int, int]] = {}
        for cid in campaign_ids:
            accepted = (a.c.outcome == "accepted", o.c.campaign_id == cid)
            base = select(func.count()).select_from(a.join(o, a.c.outbound_id == o.c.id)).where(*accepted)
            total = int((await conn.execute(base)).scalar_one())
            window = (a.c.finished_at >= window_start, a.c.finished_at < window_end)
            per_campaign[cid] = (int((await conn.execute(base.where(*window))).scalar_one()), total)
        span = (await conn.execute(
            select(func.min(a.c.started_at), func.max(a.c.finished_at)).where(o.c.campaign_id.is_not(None))
            .select_from(a.join(o, a.c.outbound_id == o.c.id))
        )).one()
        throttled = int((await conn.execute(
            select(func.count()).select_from(a).where(a.c.error_code == 130429)
        )).scalar_one())
    await store.close()

    window_s = (window_end - window_start).total_seconds()
    in_window = sum(w for w, _t in per_campaign.values())
    sent = sum(t for _w, t in per_campaign.values())
    whole_s = (as_utc(span[1]) - as_utc(span[0])).total_seconds() if span[0] else 0.0
    print(f"limit {limit:.0f} msg/s, {config.concurrency} sends in flight; {args.campaigns} campaign(s), "
          f"{args.recipients} recipients; "
          f"{len(reply_ids)} replies every {args.interval * 1000:.0f} ms for {window_s:.1f} s; load {load:.2f}")
    print("| figure | value |")
    print("|---|---|")
    if latencies:
        print(f"| reply latency, enqueue → accepted: median / p95 / max | {statistics.median(latencies):.0f} / "
              f"{_pct(latencies, 0.95):.0f} / {max(latencies):.0f} ms |")
    print(f"| replies accepted | {len(replies)} of {len(reply_ids)} |")
    replies_in_window = sum(window_start <= done < window_end for _queued, done in replies.values())
    print(f"| campaign rate while replies were sent | {in_window / window_s:.1f} msg/s "
          f"(+ {replies_in_window / window_s:.1f} replies/s) |")
    print(f"| campaign rate, first send → last accepted | {sent / whole_s if whole_s else 0:.1f} msg/s "
          f"({sent} of {args.recipients} sent in {(ended - window_start).total_seconds() + args.warmup:.0f} s) |")
    if len(campaign_ids) > 1:
        shares = ", ".join(f"#{cid} {w / in_window:.0%}" if in_window else f"#{cid} -"
                           for cid, (w, _t) in per_campaign.items())
        print(f"| each campaign's share of the reply window | {shares} |")
    print(f"| 130429 answers | {throttled} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--limit", type=float, default=80.0)
    parser.add_argument("--recipients", type=int, default=2400, help="campaign rows, split over --campaigns")
    parser.add_argument("--campaigns", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=20.0, help="how long replies are enqueued")
    parser.add_argument("--interval", type=float, default=0.1, help="seconds between replies")
    parser.add_argument("--concurrency", type=int, default=0,
                        help="the dispatcher's sends in flight (default: bench.outbox_dispatch's, 64 at <= 100 msg/s)")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of campaign alone before the replies")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmpdir:
        asyncio.run(run(args, Path(tmpdir)))


if __name__ == "__main__":
    main()
