"""A flood of unsigned webhook POSTs from one address must not slow the signed webhooks of another.

    python -m bench.intake_isolation [--rounds 3] [--seconds 5] [--rate 200] [--flood-connections 64]
                                     [--set key=value ...]

One `waflow serve` process (its own process, SQLite, the default `[server]` limits unless `--set` changes
them; engine and dispatcher off, so the process only takes requests). Two peers on loopback, told apart by
their source address (Linux routes all of 127.0.0.0/8 to `lo`, so a client can bind 127.0.0.x and the server
sees that as its address — no proxy and no `X-Forwarded-For` involved, so the per-address limits apply to
real TCP peers):

- **Meta** (127.0.0.2, this process): signed one-message webhooks at a fixed rate (`--rate`) over 8
  keep-alive connections, open loop: latency from each request's *scheduled* time, so a stall counts against
  every request it delays. Every 200 means the event was stored (group commit, SQLite WAL, fsync);
- **the flood** (127.0.0.3, its own process): `--flood-connections` connections sending unsigned webhook POSTs
  back to back, reconnecting whenever the server closes one — what a flood tool does.

Each round measures Meta alone, then Meta during the flood (the flood starts 1 s before measuring); the
figures are p50 / p99 of the 200s of each phase, medians over rounds, and the p99 delta (the goal: ≤ 5 ms).
Also printed: what the flood got (answers by status, connections opened) and the server's CPU per phase.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

META, FLOOD = "127.0.0.2", "127.0.0.3"
CONNECTIONS = 8


def _pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))] * 1000 if s else float("nan")


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class _Conn(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection: write a request, resolve a future with the status (None: closed)."""

    def __init__(self) -> None:
        self.transport: Any = None
        self.buf = b""
        self.waiter: asyncio.Future[int | None] | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buf += data
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return
        head = self.buf[:end]
        length = 0
        i = head.lower().find(b"content-length:")
        if i >= 0:
            length = int(head[i + 15:].split(b"\r\n", 1)[0])
        if len(self.buf) < end + 4 + length:
            return
        self.buf = self.buf[end + 4 + length:]
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(int(head[9:12]))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    async def send(self, req: bytes) -> int | None:
        if self.closed:
            return None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(req)
        return await self.waiter


def _request(body: bytes, secret: str | None) -> bytes:
    sig = b""
    if secret is not None:
        sig = b"X-Hub-Signature-256: sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest().encode() \
            + b"\r\n"
    return (b"POST /webhook HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n" + sig +
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


def _body(pnid: str, waba: str, n: int) -> bytes:
    doc = {"object": "whatsapp_business_account", "entry": [{"id": waba, "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp", "metadata": {"display_phone_number": "15550783881", "phone_number_id": pnid},
        "contacts": [{"profile": {"name": "Ana"}, "wa_id": "34600111222"}],
        "messages": [{"from": "34600111222", "id": f"wamid.ISOLATION{n:012d}", "timestamp": "1760000000",
                      "type": "text", "text": {"body": "hola"}}]}}]}]}
    return json.dumps(doc, separators=(",", ":")).encode()


# -- the flood (its own process) ------------------------------------------------------------------------------


def _flood_main(port: int, connections: int, body: bytes, stop: Any, out: Any) -> None:
    import uvloop

    out.send(uvloop.run(_flood(port, connections, body, stop)))


async def _flood(port: int, connections: int, body: bytes, stop: Any) -> dict[str, int]:
    loop = asyncio.get_running_loop()
    req = _request(body, None)
    counts: dict[str, int] = {"connects": 0}
    done = asyncio.Event()

    async def watch() -> None:
        await asyncio.to_thread(stop.wait)  # the parent's multiprocessing Event
        done.set()

    async def worker() -> None:
        conn: _Conn | None = None
        while not done.is_set():
            if conn is None or conn.closed:
                try:
                    _, conn = await loop.create_connection(_Conn, "127.0.0.1", port, local_addr=(FLOOD, 0))
                except OSError:
                    counts["connect_error"] = counts.get("connect_error", 0) + 1
                    await asyncio.sleep(0.001)
                    continue
                counts["connects"] += 1
            sending = asyncio.ensure_future(conn.send(req))
            stopping = asyncio.ensure_future(done.wait())
            await asyncio.wait({sending, stopping}, return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            if not sending.done():
                sending.cancel()
                break
            status = sending.result()
            key = str(status) if status is not None else "closed"
            counts[key] = counts.get(key, 0) + 1
        if conn is not None and conn.transport is not None:
            conn.transport.close()

    await asyncio.gather(watch(), *(worker() for _ in range(connections)))
    return counts


# -- Meta's signed webhooks (this process) --------------------------------------------------------------------


@dataclass
class Phase:
    latencies: list[float] = field(default_factory=list)
    failed: dict[str, int] = field(default_factory=dict)
    server_cpu_s: float = 0.0
    seconds: float = 0.0
    flood: dict[str, int] = field(default_factory=dict)
    refused: dict[str, float] = field(default_factory=dict)


async def _refused(url: str) -> dict[str, float]:
    """`waflow_intake_refused_total` by reason, from the server's /metrics."""
    import httpx

    async with httpx.AsyncClient(timeout=10) as c:
        text = (await c.get(f"{url}/metrics")).text
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("waflow_intake_refused_total{"):
            reason = line.split('reason="', 1)[1].split('"', 1)[0]
            out[reason] = float(line.rsplit(" ", 1)[1])
    return out


async def _signed(port: int, requests: list[bytes], rate: float, seconds: float, warmup: float) -> Phase:
    loop = asyncio.get_running_loop()
    conns = [(await loop.create_connection(_Conn, "127.0.0.1", port, local_addr=(META, 0)))[1]
             for _ in range(CONNECTIONS)]
    phase = Phase(seconds=seconds)
    queue: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue()
    start = time.perf_counter()
    measure_from, stop_at = start + warmup, start + warmup + seconds

    async def worker(conn: _Conn) -> None:
        while (item := await queue.get()) is not None:
            t_sched, req = item
            status = await conn.send(req)
            if measure_from <= t_sched < stop_at:
                if status == 200:
                    phase.latencies.append(time.perf_counter() - t_sched)
                else:
                    phase.failed[str(status)] = phase.failed.get(str(status), 0) + 1

    async def ticker() -> None:
        interval = 1.0 / rate
        used = 0
        while True:
            now = time.perf_counter()
            if now >= stop_at or used >= len(requests):
                break
            due = min(len(requests), int((now - start) / interval) + 1)
            while used < due:
                queue.put_nowait((start + used * interval, requests[used]))
                used += 1
            await asyncio.sleep(interval / 2)
        for _ in conns:
            queue.put_nowait(None)

    await asyncio.gather(ticker(), *(worker(c) for c in conns))
    for c in conns:
        if c.transport is not None:
            c.transport.close()
    return phase


async def run(args: argparse.Namespace) -> int:
    from waflow.emulator import EmulatorConfig, run_emulator
    from waflow.server.testing import ServeProcess, free_port, write_config

    overrides: dict[str, Any] = {}
    for item in args.set:
        key, _, value = item.partition("=")
        overrides[key] = json.loads(value)
    secret = "isolation-app-secret"
    rows: list[tuple[Phase, Phase]] = []
    with tempfile.TemporaryDirectory(prefix="waflow-isolation-") as tmp:
        async with run_emulator(EmulatorConfig(app_secret=secret, verify_token="isolation-vt")) as emu:
            port = free_port()
            config = write_config(Path(tmp), emu, port=port, lift_limits=False,
                                  server={"run_engine": False, "run_dispatcher": False, **overrides})
            serve = ServeProcess(config, port)
            await serve.start()
            assert serve.proc is not None
            pid = serve.proc.pid
            pnid, waba = emu.config.phone_number_id, emu.config.waba_id or ""
            per_phase = int(args.rate * (args.seconds + 1.5)) + 10
            n = 0
            ctx = mp.get_context("spawn")
            try:
                for r in range(args.rounds):
                    phases = []
                    for flooding in (False, True):
                        requests = [_request(_body(pnid, waba, n + i), secret) for i in range(per_phase)]
                        n += per_phase
                        proc = None
                        if flooding:
                            stop = ctx.Event()
                            parent, child = ctx.Pipe(duplex=False)
                            proc = ctx.Process(target=_flood_main, args=(port, args.flood_connections,
                                                                         _body(pnid, waba, 10**11), stop, child))
                            proc.start()
                            await asyncio.sleep(1.0)  # the flood gets going (and its address over budget)
                        refused0 = await _refused(serve.url)
                        cpu0 = _cpu_s(pid)
                        phase = await _signed(port, requests, args.rate, args.seconds, warmup=0.5)
                        phase.server_cpu_s = _cpu_s(pid) - cpu0
                        if proc is not None:
                            stop.set()
                            phase.flood = parent.recv()
                            proc.join()
                        refused1 = await _refused(serve.url)
                        phase.refused = {k: v - refused0.get(k, 0.0) for k, v in refused1.items()
                                         if v - refused0.get(k, 0.0)}
                        phases.append(phase)
                        label = "flood" if flooding else "alone"
                        print(f"round {r + 1} {label:5}: p50 {_pct(phase.latencies, 0.5):6.2f} ms  "
                              f"p99 {_pct(phase.latencies, 0.99):6.2f} ms  ({len(phase.latencies)} signed 200s"
                              f"{', not 200: ' + str(phase.failed) if phase.failed else ''}; server CPU "
                              f"{phase.server_cpu_s / (args.seconds + 0.5) * 100:.0f}% of a core)"
                              + (f"\n               flood got: {phase.flood}; the server refused: "
                                 f"{ {k: int(v) for k, v in phase.refused.items()} }" if phase.flood else ""),
                              flush=True)
                    rows.append((phases[0], phases[1]))
            finally:
                rc = await serve.stop()
    a50 = statistics.median(_pct(a.latencies, 0.5) for a, _ in rows)
    a99 = statistics.median(_pct(a.latencies, 0.99) for a, _ in rows)
    f50 = statistics.median(_pct(f.latencies, 0.5) for _, f in rows)
    f99 = statistics.median(_pct(f.latencies, 0.99) for _, f in rows)
    failed = sum(sum(p.failed.values()) for row in rows for p in row)
    print(f"\nsigned webhooks at {args.rate:g}/s from {META}, medians of {args.rounds} rounds of {args.seconds:g} s:")
    print(f"  alone:        p50 {a50:.2f} ms, p99 {a99:.2f} ms")
    print(f"  during flood: p50 {f50:.2f} ms, p99 {f99:.2f} ms  ({args.flood_connections} connections from {FLOOD})")
    print(f"  p99 delta:    {f99 - a99:+.2f} ms (goal ≤ +5 ms); signed webhooks not answered 200: {failed}")
    return 0 if rc == 0 else 1


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.intake_isolation", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rate", type=float, default=200.0, help="signed webhooks per second")
    parser.add_argument("--flood-connections", type=int, default=64)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=JSON",
                        help="a [server] setting for the run, e.g. --set penalized_connections_per_s=1000000")
    args = parser.parse_args(argv)
    try:
        import uvloop

        sys.exit(uvloop.run(run(args)))
    except ImportError:
        sys.exit(asyncio.run(run(args)))


if __name__ == "__main__":
    main()
