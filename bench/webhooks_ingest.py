"""Signed webhooks ingested durably: events/s and requests/s at 64 connections, p50/p99 latency.

    python -m bench.webhooks_ingest [--rounds 3] [--seconds 5] [--concurrency 64] [--per-post 10]
                                    [--backends sqlite,postgresql] [--no-pywa]

The server runs in its own process (`python -m waflow.webhooks`: uvicorn + httptools + uvloop),
the load generator in this one (a minimal keep-alive HTTP/1.1 client on uvloop; bodies are
built from a template and signed per request). Scenarios:

- `statuses xK`: each POST carries K delivery statuses (sent/delivered/read of distinct
  wamids, with 2026-style contacts) — how Meta batches status traffic;
- `message x1`: each POST is one inbound text message (one event per request).

waflow answers 200 only after the group commit that holds the events (SQLite: WAL,
synchronous=FULL). Status application is measured three ways (`--modes`): `ingest` (status
rows left pending for a `waflow worker`'s StatusProcessor), `processor` (the StatusProcessor in
the server process, competing for its CPU) and `inline` (applied in the inbox transaction).
The same payloads go to a FastAPI app using pywa's
webhook handling (`bench/webhooks_pywa_app.py`: signature check, handlers that do nothing,
nothing stored) and the ratio is printed. Figures are medians over the rounds; after the waflow
rounds the inbox is counted to check that every answered event was stored.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import hmac
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

PNID = "106540352242922"
WABA = "102290129340398"
SECRET = "bench-app-secret"
TOKEN = "bench-verify-token"
# pywa 4.5 requires the 2026 business-scoped `user_id` on contacts
CONTACTS = [{"profile": {"name": "Ana Ruiz"}, "wa_id": "34600111222", "user_id": "US.13491208655302741918"}]


# -- payloads ------------------------------------------------------------------------------------


def _envelope(value: dict[str, Any]) -> dict[str, Any]:
    return {"object": "whatsapp_business_account", "entry": [{"id": WABA, "changes": [{"field": "messages",
                                                                                         "value": value}]}]}


def status_template(k: int) -> bytes:
    meta = {"display_phone_number": "15550783881", "phone_number_id": PNID}
    statuses = []
    for j in range(k):
        statuses.append({
            "id": f"wamid.HBgLMzQ2MDAxMTEyMjIVAgARGBI@@@@@@@@@@{j:03d}", "status": ("sent", "delivered", "read")[j % 3],
            "timestamp": "1760000051", "recipient_id": "34600111222", "biz_opaque_callback_data": "wf:0",
            "conversation": {"id": "8f842dbba350821654c9dfed31f5635c", "origin": {"type": "utility"}},
            "pricing": {"billable": False, "pricing_model": "PMP", "type": "free_customer_service",
                        "category": "utility"},
        })
    value = {"messaging_product": "whatsapp", "metadata": meta,
             "contacts": CONTACTS, "statuses": statuses}
    return json.dumps(_envelope(value), ensure_ascii=True, separators=(",", ":")).encode()


def message_template() -> bytes:
    value = {"messaging_product": "whatsapp",
             "metadata": {"display_phone_number": "15550783881", "phone_number_id": PNID},
             "contacts": CONTACTS,
             "messages": [{"from": "34600111222", "id": "wamid.HBgLMzQ2MDAxMTEyMjIVAgASGBQ@@@@@@@@@@",
                           "timestamp": "1760000000", "type": "text", "text": {"body": "Hola, \u00bftenéis stock?"}}]}
    return json.dumps(_envelope(value), ensure_ascii=True, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Scenario:
    name: str
    template: bytes
    events_per_post: int


def request_bytes(template: bytes, n: int, path: bytes = b"/webhook") -> bytes:
    body = template.replace(b"@@@@@@@@@@", b"%010d" % n)
    sig = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest().encode()
    return (b"POST " + path + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"User-Agent: facebookexternalua\r\nX-Hub-Signature-256: sha256=" + sig +
            b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


# -- load generator ------------------------------------------------------------------------------


@dataclass
class RoundResult:
    ok: int
    failed: int
    seconds: float
    latencies: list[float]

    def rps(self) -> float:
        return self.ok / self.seconds

    def pct(self, q: float) -> float:
        lat = sorted(self.latencies)
        return lat[min(len(lat) - 1, int(q * len(lat)))] * 1000 if lat else float("nan")


async def _one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, req: bytes) -> int:
    writer.write(req)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    if length:
        await reader.readexactly(length)
    return status


async def load(port: int, scenario: Scenario, counter: Callable[[], int], concurrency: int, seconds: float,
               warmup: float = 1.0) -> RoundResult:
    start = time.perf_counter()
    measure_from = start + warmup
    stop_at = measure_from + seconds
    ok = failed = 0
    latencies: list[float] = []

    async def worker() -> None:
        nonlocal ok, failed
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while True:
                req = request_bytes(scenario.template, counter())
                t0 = time.perf_counter()
                if t0 >= stop_at:
                    return
                status = await _one(reader, writer, req)
                t1 = time.perf_counter()
                if t0 >= measure_from:
                    if status == 200:
                        ok += 1
                        latencies.append(t1 - t0)
                    else:
                        failed += 1
        finally:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return RoundResult(ok, failed, seconds, latencies)


# -- servers -------------------------------------------------------------------------------------


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _wait_up(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /webhook?hub.mode=subscribe&hub.challenge=1&hub.verify_token=" + TOKEN.encode() +
                         b" HTTP/1.1\r\nHost: x\r\n\r\n")
            status = int((await reader.readuntil(b"\r\n\r\n"))[9:12])
            writer.close()
            if status == 200:
                return
        except OSError:
            pass
        await asyncio.sleep(0.1)
    raise TimeoutError("server did not come up")


@contextlib.asynccontextmanager
async def server(argv: list[str], env: dict[str, str]) -> AsyncIterator[int]:
    port = _free_port()
    proc = subprocess.Popen(  # noqa: ASYNC220 (started once, before measuring)
        [sys.executable, *argv, "--port", str(port)], env={**os.environ, **env}, stdout=subprocess.DEVNULL
    )
    try:
        await _wait_up(port, proc)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def waflow_argv(url: str, mode: str) -> tuple[list[str], dict[str, str]]:
    cfg: dict[str, Any] = {"numbers": {PNID: {"app_secret": SECRET, "verify_token": TOKEN, "waba_id": WABA}}}
    cfg["apply_statuses_inline"] = mode == "inline"
    cfg["status_processor"] = mode == "processor"
    return (["-m", "waflow.webhooks", "--path", "/webhook", "--database-url", url, "--upgrade"],
            {"WAFLOW_WEBHOOK_CONFIG": json.dumps(cfg)})


def pywa_argv() -> tuple[list[str], dict[str, str]]:
    return (["-m", "bench.webhooks_pywa_app"],
            {"WAFLOW_BENCH_SECRET": SECRET, "WAFLOW_BENCH_TOKEN": TOKEN, "WAFLOW_BENCH_PNID": PNID})


async def count_inbox(url: str) -> int:
    from sqlalchemy import func, select

    from waflow.store import Store
    from waflow.store.tables import inbound_events

    store = Store.open(url)
    try:
        async with store.read() as conn:
            return int((await conn.execute(select(func.count()).select_from(inbound_events))).scalar_one())
    finally:
        await store.close()


@contextlib.asynccontextmanager
async def database(backend: str) -> AsyncIterator[str]:
    if backend == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            yield f"sqlite+aiosqlite:///{tmp}/bench.db"
        return
    from waflow.store.testing import temporary_postgres_url

    async with temporary_postgres_url() as url:
        yield url


# -- main ------------------------------------------------------------------------------------------


def _line(label: str, scenario: Scenario, results: list[RoundResult]) -> float:
    eps = statistics.median(r.rps() * scenario.events_per_post for r in results)
    rps = statistics.median(r.rps() for r in results)
    p50 = statistics.median(r.pct(0.50) for r in results)
    p99 = statistics.median(r.pct(0.99) for r in results)
    failed = sum(r.failed for r in results)
    print(f"  {label:<26} {scenario.name:<14} {eps:>9,.0f} events/s {rps:>8,.0f} req/s "
          f"p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  non-200 {failed}", flush=True)
    return eps


async def run(args: argparse.Namespace) -> None:
    scenarios = [Scenario(f"statuses x{args.per_post}", status_template(args.per_post), args.per_post),
                 Scenario("message x1", message_template(), 1)]
    print(f"webhooks ingest: {args.concurrency} connections, {args.rounds} rounds x {args.seconds:.0f} s "
          f"(+1 s warm-up), medians; {os.cpu_count()} CPUs shared by server, database and load generator",
          flush=True)
    n = 0

    def counter() -> int:
        nonlocal n
        n += 1
        return n

    waflow_eps: dict[tuple[str, str], float] = {}
    for backend, mode in [(b, m) for b in args.backends.split(",") for m in args.modes.split(",")]:
        async with database(backend) as url:
            argv, env = waflow_argv(url, mode)
            total_ok = 0
            async with server(argv, env) as port:
                for scenario in scenarios:
                    results = []
                    for _ in range(args.rounds):
                        results.append(await load(port, scenario, counter, args.concurrency, args.seconds))
                    total_ok += sum(r.ok for r in results) * scenario.events_per_post
                    eps = _line(f"waflow {backend}/{mode}", scenario, results)
                    if mode == "ingest":
                        waflow_eps[(backend, scenario.name)] = eps
            stored = await count_inbox(url)
            print(f"  {'':<26} inbox rows: {stored:,} (>= {total_ok:,} events answered 200 in measured windows)",
                  flush=True)
    if args.no_pywa:
        return
    argv, env = pywa_argv()
    async with server(argv, env) as port:
        for scenario in scenarios:
            results = [await load(port, scenario, counter, args.concurrency, args.seconds) for _ in range(args.rounds)]
            eps = _line("pywa 4.5 / FastAPI", scenario, results)
            for backend in args.backends.split(","):
                mine = waflow_eps.get((backend, scenario.name))
                if mine:
                    print(f"  {'':<26} ratio waflow/{backend} ÷ pywa: {mine / eps:.2f}x "
                          "(waflow stores durably; pywa stores nothing)", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.webhooks_ingest", description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--per-post", type=int, default=10)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--no-pywa", action="store_true")
    parser.add_argument("--modes", default="ingest,processor,inline",
                        help="ingest: statuses left pending for a worker; processor: + in-process StatusProcessor; "
                             "inline: statuses applied in the inbox transaction")
    args = parser.parse_args(argv)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
