"""The admin API on a real socket (its own thread and event loop) over a fresh SQLite file and the emulator."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from waflow.api import ApiContext, create_api
from waflow.cloudapi import CloudAPIClient
from waflow.config import hash_api_key
from waflow.emulator import EmulatorConfig, run_emulator, serve_asgi
from waflow.store import Store

API_KEY = "test-admin-key-0123456789"


@dataclass
class ApiServer:
    url: str
    phone_number_id: str
    notified: list[int]

    def client(self, key: str | None = API_KEY) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=10)


@pytest.fixture(scope="module")
def api_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    db = Path(tmp_path_factory.mktemp("api")) / "api.db"
    ready = threading.Event()
    box: dict[str, object] = {}
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    async def main() -> None:
        store = Store.open(f"sqlite+aiosqlite:///{db}")
        await store.upgrade()
        notified: list[int] = []
        try:
            async with run_emulator(EmulatorConfig()) as emu:
                cfg = emu.config
                client = CloudAPIClient(phone_number_id=cfg.phone_number_id, waba_id=cfg.waba_id,
                                        token=cfg.access_token, base_url=emu.base_url)
                ctx = ApiContext(store=store, clients={cfg.phone_number_id: client},
                                 key_hashes=[hash_api_key(API_KEY)], notify_outbox=lambda: notified.append(1))
                async with serve_asgi(create_api(ctx)) as url:
                    box["server"] = ApiServer(url, cfg.phone_number_id, notified)
                    ready.set()
                    await stop.wait()
                await client.aclose()
        finally:
            await store.close()
            ready.set()

    thread = threading.Thread(target=lambda: loop.run_until_complete(main()), daemon=True)
    thread.start()
    assert ready.wait(30)
    assert "server" in box, "the API server did not start"
    server = box["server"]
    assert isinstance(server, ApiServer)
    yield server
    loop.call_soon_threadsafe(stop.set)
    thread.join(30)
