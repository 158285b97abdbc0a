"""`python -m waflow.outbox`: run one dispatcher process until SIGTERM / SIGINT (or `--seconds`).

Configuration from flags or the environment: `WAFLOW_DATABASE_URL`, `WAFLOW_REDIS_URL`,
`WHATSAPP_PHONE_NUMBER_ID`, `WHATSAPP_WABA_ID`, `WHATSAPP_ACCESS_TOKEN`, `WHATSAPP_BASE_URL`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal

from waflow.cloudapi import CloudAPIClient, Timeouts
from waflow.cloudapi.transport import DEFAULT_BASE_URL
from waflow.outbox.dispatcher import DispatcherConfig, OutboxDispatcher
from waflow.outbox.limits import make_limiters
from waflow.outbox.retry import RetryPolicy
from waflow.store import Store


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    env = os.environ.get
    p = argparse.ArgumentParser(prog="python -m waflow.outbox", description=__doc__)
    p.add_argument("--db", default=env("WAFLOW_DATABASE_URL"))
    p.add_argument("--redis", default=env("WAFLOW_REDIS_URL"))
    p.add_argument("--redis-prefix", default="waflow:limits")
    p.add_argument("--phone-number-id", default=env("WHATSAPP_PHONE_NUMBER_ID"))
    p.add_argument("--waba-id", default=env("WHATSAPP_WABA_ID"))
    p.add_argument("--token", default=env("WHATSAPP_ACCESS_TOKEN"))
    p.add_argument("--base-url", default=env("WHATSAPP_BASE_URL", DEFAULT_BASE_URL))
    p.add_argument("--rate", type=float, default=80.0)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--lease", type=float, default=60.0)
    p.add_argument("--grace", type=float, default=60.0, help="seconds an unknown outcome waits for a status")
    p.add_argument("--read-timeout", type=float, default=30.0)
    p.add_argument("--no-window", action="store_true", help="do not check the 24 h window locally")
    p.add_argument("--seconds", type=float, default=None, help="stop after this long")
    return p.parse_args(argv)


async def run(args: argparse.Namespace) -> None:
    if not (args.db and args.phone_number_id and args.token):
        raise SystemExit("need --db, --phone-number-id and --token (or their environment variables)")
    store = Store.open(args.db)
    await store.upgrade()
    client = CloudAPIClient(
        phone_number_id=args.phone_number_id, waba_id=args.waba_id, token=args.token, base_url=args.base_url,
        timeouts=Timeouts(read=args.read_timeout, total=args.read_timeout + 5),
    )
    limiters = make_limiters(args.redis, prefix=args.redis_prefix)
    config = DispatcherConfig(
        rate_per_s=args.rate, concurrency=args.concurrency, lease_s=args.lease, poll_s=0.02,
        enforce_window=not args.no_window, retry=RetryPolicy(unknown_grace_s=args.grace),
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        dispatcher = OutboxDispatcher(store, client, limiters=limiters, config=config)
        async with dispatcher.running():
            print("dispatcher running", flush=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), args.seconds)
        print(f"sent {dispatcher.sent}", flush=True)
    finally:
        await client.aclose()
        await limiters.aclose()
        await store.close()


def main(argv: list[str] | None = None) -> None:
    asyncio.run(run(parse(argv)))


if __name__ == "__main__":
    main()
