"""The comparison server for `bench.webhooks_ingest`: FastAPI + pywa's webhook handling.

pywa (async client) registers its own GET/POST routes on the FastAPI app, checks the signature,
answers 200 and runs the handlers in a background task; the handlers here do nothing and nothing
is stored — the floor of what a pywa-based receiver costs.

    WAFLOW_BENCH_SECRET=... WAFLOW_BENCH_TOKEN=... WAFLOW_BENCH_PNID=... \\
    python -m bench.webhooks_pywa_app --port 8081
"""

from __future__ import annotations

import argparse
import os
from typing import Any

import uvicorn
from fastapi import FastAPI
from pywa_async import WhatsApp, types  # type: ignore[attr-defined]


def build_app() -> FastAPI:
    app = FastAPI()
    wa = WhatsApp(
        phone_id=os.environ["WAFLOW_BENCH_PNID"],
        token="bench-token-not-used",
        server=app,
        webhook_endpoint="/webhook",
        verify_token=os.environ["WAFLOW_BENCH_TOKEN"],
        app_secret=os.environ["WAFLOW_BENCH_SECRET"],
        validate_updates=True,
    )

    @wa.on_message()  # type: ignore[misc]
    async def on_message(_: WhatsApp, msg: types.Message) -> None:  # type: ignore[name-defined]
        return None

    @wa.on_message_status()  # type: ignore[misc]
    async def on_status(_: WhatsApp, status: types.MessageStatus) -> None:  # type: ignore[name-defined]
        return None

    app.state.wa = wa
    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=8081)
    args = parser.parse_args(argv)
    kw: dict[str, Any] = {"loop": "uvloop", "http": "httptools", "log_level": "warning", "access_log": False}
    uvicorn.run(build_app(), host="127.0.0.1", port=args.port, **kw)


if __name__ == "__main__":
    main()
