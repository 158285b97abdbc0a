"""SIGKILL the server mid-burst: every event that was answered 200 is in the store after restart."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from waflow.store import Store

from .helpers import PNID, SECRET, TOKEN, WABA, free_port, inbox_rows, post

pytestmark = pytest.mark.slow


def _config_json() -> str:
    return json.dumps({"numbers": {PNID: {"app_secret": SECRET, "verify_token": TOKEN, "waba_id": WABA}}})


@contextlib.contextmanager
def server_process(url: str, port: int) -> Iterator[subprocess.Popen[bytes]]:
    env = {**os.environ, "WAFLOW_WEBHOOK_CONFIG": _config_json()}
    proc = subprocess.Popen(
        [sys.executable, "-m", "waflow.webhooks", "--port", str(port), "--database-url", url, "--upgrade"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


async def wait_up(base: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 20
    async with httpx.AsyncClient() as c:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited: {proc.stderr.read().decode()[-2000:] if proc.stderr else ''}")
            with contextlib.suppress(httpx.TransportError):
                r = await c.get(base, params={"hub.mode": "subscribe", "hub.verify_token": TOKEN, "hub.challenge": "1"})
                if r.status_code == 200:
                    return
            await asyncio.sleep(0.05)
    raise TimeoutError("server did not start")


def body(i: int, per_post: int = 3) -> tuple[dict[str, object], list[str]]:
    ids = [f"wamid.KILL{i:06d}{j}" for j in range(per_post)]
    msgs = [{"from": "34600111222", "id": w, "timestamp": "1760000000", "type": "text", "text": {"body": f"m{i}"}}
            for w in ids]
    return {"object": "whatsapp_business_account", "entry": [{"id": WABA, "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp", "metadata": {"display_phone_number": "1", "phone_number_id": PNID},
        "contacts": [{"profile": {"name": "Ana"}, "wa_id": "34600111222"}], "messages": msgs}}]}]}, ids


async def test_sigkill_mid_burst_loses_nothing_acknowledged(store: Store) -> None:
    url = store.url.render_as_string(hide_password=False)
    port = free_port()
    base = f"http://127.0.0.1:{port}/webhook"
    acked: list[str] = []
    codes: list[int] = []
    sent = 0
    with server_process(url, port) as proc:
        await wait_up(base, proc)
        counter = iter(range(10**6))

        async def client() -> None:
            nonlocal sent
            async with httpx.AsyncClient(timeout=5) as c:
                while True:
                    doc, ids = body(next(counter))
                    sent += 1
                    try:
                        r = await post(c, base, doc)
                    except httpx.TransportError:
                        return  # the server died
                    if r.status_code == 200:
                        acked.extend(ids)
                    else:
                        codes.append(r.status_code)

        clients = [asyncio.create_task(client()) for _ in range(32)]
        deadline = time.monotonic() + 10
        while len(acked) < 600 and time.monotonic() < deadline:  # noqa: ASYNC110 (kill in the thick of it)
            await asyncio.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
        await asyncio.wait_for(asyncio.gather(*clients), 15)
    assert len(acked) > 100, f"the burst never got going (answers {set(codes)}, {sent} sent)"
    assert sent * 3 > len(acked)  # some requests were in flight when it died

    # restart on the same database: it comes back and serves, and every acknowledged event is there
    with server_process(url, port) as proc:
        await wait_up(base, proc)
        async with httpx.AsyncClient() as c:
            doc, ids = body(10**6 - 1)
            assert (await post(c, base, doc)).status_code == 200
    stored = {r["provider_message_id"] for r in await inbox_rows(store)}
    missing = set(acked) - stored
    assert not missing, f"{len(missing)} acknowledged events lost, e.g. {sorted(missing)[:3]}"
    assert set(ids) <= stored
