"""Engine runtime fixtures: a store on each backend, and an end-to-end rig (emulator → webhooks → inbox →
engine → outbox dispatcher → emulator) with a controllable clock."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, text

from waflow.cloudapi.client import CloudAPIClient
from waflow.emulator import EmulatorConfig, EmulatorHandle, run_emulator, serve_asgi
from waflow.engine.flows.loader import load_flow_text
from waflow.engine.runtime import EngineConfig, EngineWorker, TimerScheduler, deploy_flow
from waflow.outbox import DispatcherConfig, OutboxDispatcher
from waflow.store import Store, utcnow
from waflow.store.tables import ENGINE_OPEN_EVENTS, inbound_events, sessions
from waflow.webhooks import WebhookConfig, create_webhook_app

PNID = "106540352242922"
WABA = "102290129340398"
SECRET = "engine-app-secret"
TOKEN = "engine-verify-token"


class Clock:
    """Real time plus an offset the test moves forward."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return utcnow() + self.offset

    def advance(self, **kw: float) -> None:
        self.offset += timedelta(**kw)


async def deploy(store: Store, text: str) -> int:
    async with store.begin() as conn:
        return await deploy_flow(conn, load_flow_text(text))


@dataclass
class Rig:
    store: Store
    emu: EmulatorHandle
    clock: Clock
    config: EngineConfig
    worker: EngineWorker
    scheduler: TimerScheduler
    dispatcher: OutboxDispatcher
    extra: list[Any] = field(default_factory=list)

    async def deploy(self, text: str) -> int:
        return await deploy(self.store, text)

    def new_worker(self) -> EngineWorker:
        return EngineWorker(self.store, self.config, clock=self.clock)

    async def restart_engine(self) -> None:
        """Stop the worker and the scheduler; start fresh ones on the same database (a process restart)."""
        await self.worker.stop()
        await self.scheduler.stop()
        self.worker = self.new_worker()
        self.scheduler = TimerScheduler(self.store, clock=self.clock, interval=0.02)
        self.worker.start()
        self.scheduler.start()

    async def settle(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """Until the webhooks are in, the engine has nothing open, and the outbox is sent."""
        await self.emu.webhooks_idle(timeout)
        async with asyncio.timeout(timeout):
            while True:
                async with self.store.read() as conn:
                    stmt = select(inbound_events.c.id).where(text(ENGINE_OPEN_EVENTS)).limit(1)
                    open_events = (await conn.execute(stmt)).first()
                if open_events is None and not self.worker._http_tasks:
                    break
                await asyncio.sleep(0.02)
        await self.dispatcher.drain(timeout)

    async def session_rows(self) -> list[dict[str, Any]]:
        async with self.store.read() as conn:
            rows = await conn.execute(select(sessions).order_by(sessions.c.id))
            return [dict(r._mapping) for r in rows]

    async def tick(self) -> None:
        """Fire what is due now, then let everything settle."""
        await self.scheduler.tick()
        await self.settle()


def texts(user: Any) -> list[str]:
    """What a simulated user received, as readable strings (text bodies, interactive bodies, template names)."""
    out = []
    for m in user.received():
        if m.type == "text":
            out.append(m.content["body"])
        elif m.type == "interactive":
            out.append(m.content["body"]["text"])
        elif m.type == "template":
            out.append("template:" + m.content["name"])
        else:
            out.append(m.type)
    return out


@pytest.fixture
async def rig(store: Store) -> AsyncIterator[Rig]:
    cfg = WebhookConfig.single(PNID, SECRET, TOKEN, waba_id=WABA)
    app = create_webhook_app(cfg, store, path="/webhook")
    async with serve_asgi(app) as base:
        emu_cfg = EmulatorConfig(
            callback_url=f"{base}/webhook", app_secret=SECRET, verify_token=TOKEN, phone_number_id=PNID, waba_id=WABA
        )
        async with run_emulator(emu_cfg) as emu:
            client = CloudAPIClient(
                phone_number_id=PNID, waba_id=WABA, token=emu.config.access_token, base_url=emu.base_url
            )
            dispatcher = OutboxDispatcher(
                store,
                client,
                config=DispatcherConfig(poll_s=0.01, check_templates=False, maintenance_s=0.1, rate_per_s=1000),
            )
            clock = Clock()
            config = EngineConfig(poll_interval=0.01, http_allow_hosts=frozenset({"127.0.0.1"}))
            worker = EngineWorker(store, config, clock=clock)
            scheduler = TimerScheduler(store, clock=clock, interval=0.02)
            r = Rig(store, emu, clock, config, worker, scheduler, dispatcher)
            await dispatcher.start()
            worker.start()
            scheduler.start()
            try:
                yield r
            finally:
                await r.worker.stop()
                await r.scheduler.stop()
                await dispatcher.stop()
                await client.aclose()
