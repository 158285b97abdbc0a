"""`python -m waflow.webhooks`: run the webhook endpoint alone (tests, benchmarks, small setups).

    WAFLOW_DATABASE_URL=sqlite+aiosqlite:///waflow.db \\
    WAFLOW_WEBHOOK_CONFIG='{"numbers": {"1065...": {"app_secret": "...", "verify_token": "..."}}}' \\
    python -m waflow.webhooks --port 8080 --path /webhook --upgrade

`WAFLOW_WEBHOOK_CONFIG` may also be `@/path/to/config.json`. Secrets are read from the
environment (never from argv, which other users of the machine can see).
"""

from __future__ import annotations

import argparse
import asyncio
import logging

from waflow.process import settle_heap
from waflow.store import Store
from waflow.store.engine import default_url
from waflow.webhooks.app import create_webhook_app
from waflow.webhooks.config import WebhookConfig


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m waflow.webhooks", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--path", default="/webhook")
    parser.add_argument("--database-url", default=None, help="default: WAFLOW_DATABASE_URL, else ./waflow.db")
    parser.add_argument("--upgrade", action="store_true", help="migrate the database schema first")
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args(argv)

    import uvicorn

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = WebhookConfig.from_env()
    store = Store.open(args.database_url or default_url())
    if args.upgrade:
        asyncio.run(_upgrade(store))
    app = create_webhook_app(config, store, path=args.path)
    settle_heap()
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        log_level=args.log_level,
        access_log=False,
        timeout_graceful_shutdown=5,
    )


async def _upgrade(store: Store) -> None:
    await store.upgrade()
    await store.engine.dispose()


if __name__ == "__main__":
    main()
