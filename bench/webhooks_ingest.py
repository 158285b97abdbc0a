"""Signed webhooks ingested durably: events/s and p50/p99 latency at 64 connections, statuses applied.

    python -m bench.webhooks_ingest [--rounds 3] [--seconds 4] [--concurrency 64] [--per-post 10]
                                    [--backends sqlite,postgresql] [--modes default] [--no-pywa] [--no-closed]
                                    [--rates 800x10,3000x1]

The server runs in its own process (`python -m waflow.webhooks`: uvicorn, httptools, uvloop, no
access log, one worker: SQLite has a single writer). The load generator runs in another process:
every request is built and signed before the clock starts, and the client is a bare asyncio
Protocol on uvloop speaking HTTP/1.1 keep-alive (httpx costs ~200 µs a request, which on a
2-core machine is taken from the server). waflow answers 200 only after the group commit that
holds the events is durable (SQLite: WAL, synchronous=FULL).

Payloads: delivery statuses of messages that exist in the outbox (the bench seeds
`outbound_messages` with their wamids), each wamid getting sent, delivered and read in turn,
so the status processor really applies them (advances the message, writes the history);
and one inbound text message per POST.

Two kinds of run, each in waflow's own configuration (mode `default`: statuses applied in the
inbox commit on SQLite, by the in-process status processor on PostgreSQL; `--modes` forces one):

- closed loop: 64 connections send back to back; maximum throughput. Latency there is
  64 / throughput by Little's law, whatever the server does;
- open loop: requests are sent at a fixed offered rate (`800x10` = 800 POSTs/s of 10 statuses =
  8,000 events/s; `3000x1` = 3,000 single-status POSTs/s) over the same 64 connections, and
  latency is measured from each request's *scheduled* send time, so a stall counts against
  every request it delays (no coordinated omission).

After each run the bench counts the status events still pending in the inbox (the backlog) and
how long it takes to reach zero once the load stops: "bounded" means the backlog at the end of a
round stays under one second of offered statuses. The same payloads go to a
FastAPI app using pywa's webhook handling (`bench/webhooks_pywa_app.py`: signature check,
handlers that do nothing, nothing stored) in the same run, and the ratio is printed. Figures
are medians over the rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import hmac
import json
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

PNID = "106540352242922"
WABA = "102290129340398"
SECRET = "bench-app-secret"
TOKEN = "bench-verify-token"
# pywa 4.5 requires the 2026 business-scoped `user_id` on contacts
CONTACTS = [{"profile": {"name": "Ana Ruiz"}, "wa_id": "34600111222", "user_id": "US.13491208655302741918"}]
STATUS_CHAIN = ("sent", "delivered", "read")


def wamid(n: int) -> str:
    return f"wamid.HBgLMzQ2MDAxMTEyMjIVAgARGBI{n:012d}"


# -- payloads ------------------------------------------------------------------------------------


def _envelope(value: dict[str, Any]) -> bytes:
    doc = {"object": "whatsapp_business_account",
           "entry": [{"id": WABA, "changes": [{"field": "messages", "value": value}]}]}
    return json.dumps(doc, ensure_ascii=True, separators=(",", ":")).encode()


def status_body(first_event: int, k: int) -> bytes:
    """K statuses; event e is status e % 3 (sent, delivered, read) of message e // 3."""
    statuses = []
    for e in range(first_event, first_event + k):
        statuses.append({
            "id": wamid(e // 3), "status": STATUS_CHAIN[e % 3],
            "timestamp": str(1760000000 + e % 3), "recipient_id": "34600111222",
            "biz_opaque_callback_data": f"wf:{e // 3 + 1}",
            "conversation": {"id": "8f842dbba350821654c9dfed31f5635c", "origin": {"type": "utility"}},
            "pricing": {"billable": False, "pricing_model": "PMP", "type": "free_customer_service",
                        "category": "utility"},
        })
    meta = {"display_phone_number": "15550783881", "phone_number_id": PNID}
    return _envelope({"messaging_product": "whatsapp", "metadata": meta, "contacts": CONTACTS, "statuses": statuses})


def message_body(n: int) -> bytes:
    return _envelope({"messaging_product": "whatsapp",
                      "metadata": {"display_phone_number": "15550783881", "phone_number_id": PNID},
                      "contacts": CONTACTS,
                      "messages": [{"from": "34600111222", "id": f"wamid.HBgLMzQ2MDAxMTEyMjIVAgASGBQ{n:012d}",
                                    "timestamp": "1760000000", "type": "text",
                                    "text": {"body": "Hola, \u00bftenéis stock?"}}]})


def request_bytes(body: bytes, path: bytes = b"/webhook") -> bytes:
    sig = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest().encode()
    return (b"POST " + path + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"User-Agent: facebookexternalua\r\nX-Hub-Signature-256: sha256=" + sig +
            b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


@dataclass(frozen=True)
class Scenario:
    kind: str  # "statuses" or "message"
    per_post: int

    @property
    def name(self) -> str:
        return f"statuses x{self.per_post}" if self.kind == "statuses" else "message x1"

    def build(self, first_event: int, count: int) -> list[bytes]:
        if self.kind == "statuses":
            return [request_bytes(status_body(first_event + i * self.per_post, self.per_post)) for i in range(count)]
        return [request_bytes(message_body(first_event + i)) for i in range(count)]


# -- load generator (its own process) --------------------------------------------------------------


@dataclass
class RoundResult:
    ok: int
    failed: int
    seconds: float
    latencies: list[float]
    offered_rps: float | None = None
    events_used: int = 0
    backlog_end: int = 0
    drain_s: float = 0.0
    extra: dict[str, float] = field(default_factory=dict)

    def rps(self) -> float:
        return self.ok / self.seconds

    def pct(self, q: float) -> float:
        lat = sorted(self.latencies)
        return lat[min(len(lat) - 1, int(q * len(lat)))] * 1000 if lat else float("nan")


class _Conn(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection: write a request, resolve a future with the status code."""

    def __init__(self) -> None:
        self.transport: Any = None  # uvloop's TCPTransport is not an asyncio.Transport subclass
        self.buf = b""
        self.waiter: asyncio.Future[int] | None = None

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
        status = int(head[9:12])
        self.buf = self.buf[end + 4 + length:]
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(status)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc or ConnectionError("closed"))

    async def send(self, req: bytes) -> int:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(req)
        return await self.waiter


async def _load(port: int, requests: list[bytes], concurrency: int, seconds: float, warmup: float,
                rate: float | None) -> RoundResult:
    loop = asyncio.get_running_loop()
    conns = []
    for _ in range(concurrency):
        _, proto = await loop.create_connection(_Conn, "127.0.0.1", port)
        conns.append(proto)
    start = time.perf_counter()
    measure_from, stop_at = start + warmup, start + warmup + seconds
    ok = failed = used = 0
    latencies: list[float] = []
    queue: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue()

    def record(t_sched: float, status: int, t1: float) -> None:
        nonlocal ok, failed
        if measure_from <= t_sched < stop_at:
            if status == 200:
                ok += 1
                latencies.append(t1 - t_sched)
            else:
                failed += 1

    async def closed(conn: _Conn) -> None:
        nonlocal used
        while True:
            t0 = time.perf_counter()
            if t0 >= stop_at or used >= len(requests):
                return
            req = requests[used]
            used += 1
            status = await conn.send(req)
            record(t0, status, time.perf_counter())

    async def open_worker(conn: _Conn) -> None:
        while (item := await queue.get()) is not None:
            t_sched, req = item
            status = await conn.send(req)
            record(t_sched, status, time.perf_counter())

    async def ticker(rps: float) -> None:
        nonlocal used
        interval = 1.0 / rps
        while True:
            now = time.perf_counter()
            due = min(len(requests), int((now - start) / interval) + 1)
            if now >= stop_at or due >= len(requests):
                break
            while used < due:  # everything scheduled up to now, stamped with its own send time
                queue.put_nowait((start + used * interval, requests[used]))
                used += 1
            await asyncio.sleep(max(interval, 0.001))  # the loop's timer resolution: send what is due per tick
        for _ in conns:
            queue.put_nowait(None)

    if rate is None:
        await asyncio.gather(*(closed(c) for c in conns))
    else:
        await asyncio.gather(ticker(rate), *(open_worker(c) for c in conns))
    for c in conns:
        if c.transport is not None:
            c.transport.close()
    return RoundResult(ok, failed, seconds, latencies, rate, used)


def _loader_main(args: tuple[int, Scenario, int, int, int, float, float, float | None], out: Any) -> None:
    port, scenario, first_event, n_requests, concurrency, seconds, warmup, rate = args
    requests = scenario.build(first_event, n_requests)  # built and signed before the clock starts
    try:
        import uvloop

        result = uvloop.run(_load(port, requests, concurrency, seconds, warmup, rate))
    except ImportError:
        result = asyncio.run(_load(port, requests, concurrency, seconds, warmup, rate))
    out.send(result)


def run_load(port: int, scenario: Scenario, first_event: int, concurrency: int, seconds: float,
             rate: float | None, max_rps: float, warmup: float = 1.0) -> RoundResult:
    """One round in a fresh loader process (blocking; the server runs in its own process)."""
    n_requests = int((rate or max_rps) * (seconds + warmup) * 1.05) + concurrency
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_loader_main, args=((port, scenario, first_event, n_requests, concurrency, seconds,
                                                    warmup, rate), child))
    proc.start()
    result: RoundResult = parent.recv()
    proc.join()
    result.events_used = result.events_used * scenario.per_post
    return result


# -- servers and database ----------------------------------------------------------------------


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
    if mode in ("inline", "processor"):
        cfg["apply_statuses_inline"] = mode == "inline"  # else: waflow's default for the database
    cfg["status_processor"] = mode != "ingest"
    return (["-m", "waflow.webhooks", "--path", "/webhook", "--database-url", url],
            {"WAFLOW_WEBHOOK_CONFIG": json.dumps(cfg)})


def pywa_argv() -> tuple[list[str], dict[str, str]]:
    return (["-m", "bench.webhooks_pywa_app"],
            {"WAFLOW_BENCH_SECRET": SECRET, "WAFLOW_BENCH_TOKEN": TOKEN, "WAFLOW_BENCH_PNID": PNID})


class Db:
    """The bench's own view of the server's database: schema, outbox seed, counts."""

    def __init__(self, url: str) -> None:
        from waflow.store import Store

        self.store = Store.open(url)

    async def prepare(self, messages: int) -> None:
        from datetime import UTC, datetime

        from waflow.store.bulk import BulkInsert
        from waflow.store.tables import outbound_messages

        await self.store.upgrade()
        now = datetime.now(UTC)
        ins = BulkInsert(outbound_messages, ["phone_number_id", "contact_key", "to_number", "type", "content", "status",
                                             "provider_message_id", "due_at", "created_at", "updated_at",
                                             "accepted_at"])
        step = 20_000
        for start in range(0, messages, step):
            rows = [(PNID, "34600111222", "34600111222", "text", '{"body":"hi"}', "accepted", wamid(n), now, now,
                     now, now) for n in range(start, min(messages, start + step))]
            async with self.store.begin() as conn:
                await ins.run(conn, rows)

    async def pending_statuses(self) -> int:
        from sqlalchemy import func, select

        from waflow.store.tables import inbound_events

        async with self.store.read() as conn:
            stmt = select(func.count()).select_from(inbound_events).where(
                inbound_events.c.kind == "status", inbound_events.c.state == "pending")
            return int((await conn.execute(stmt)).scalar_one())

    async def counts(self) -> tuple[int, int, int]:
        """(inbox rows, status history rows, messages read)."""
        from sqlalchemy import func, select

        from waflow.store.tables import inbound_events, outbound_messages, status_events

        async with self.store.read() as conn:
            inbox = (await conn.execute(select(func.count()).select_from(inbound_events))).scalar_one()
            history = (await conn.execute(select(func.count()).select_from(status_events))).scalar_one()
            read = (await conn.execute(select(func.count()).select_from(outbound_messages)
                                       .where(outbound_messages.c.status == "read"))).scalar_one()
        return int(inbox), int(history), int(read)

    async def close(self) -> None:
        await self.store.close()


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


def _line(label: str, scenario: Scenario, results: list[RoundResult], *, backlog: bool) -> float:
    eps = statistics.median(r.rps() * scenario.per_post for r in results)
    rps = statistics.median(r.rps() for r in results)
    p50 = statistics.median(r.pct(0.50) for r in results)
    p99 = statistics.median(r.pct(0.99) for r in results)
    failed = sum(r.failed for r in results)
    offered = results[0].offered_rps
    load = "closed loop" if offered is None else f"offered {offered * scenario.per_post:,.0f} ev/s"
    text = (f"  {label:<22} {scenario.name:<13} {load:<22} {eps:>8,.0f} events/s {rps:>7,.0f} req/s "
            f"p50 {p50:7.2f} ms  p99 {p99:7.2f} ms  non-200 {failed}")
    if backlog:
        ends = [r.backlog_end for r in results]
        drains = [r.drain_s for r in results]
        per_s = (offered or rps) * scenario.per_post if scenario.kind == "statuses" else 0
        bounded = all(b <= max(per_s, 1) for b in ends)
        text += (f"  backlog at end {'/'.join(f'{b:,}' for b in ends)} "
                 f"(drained in {max(drains):.1f} s) {'bounded' if bounded else 'NOT bounded'}")
    print(text, flush=True)
    return eps


async def _drain_wait(db: Db, limit_s: float = 60.0) -> tuple[int, float]:
    """Backlog right after the load stopped, and how long until the processor cleared it."""
    end = await db.pending_statuses()
    t0 = time.perf_counter()
    left = end
    while left and time.perf_counter() - t0 < limit_s:
        await asyncio.sleep(0.05)
        left = await db.pending_statuses()
    return end, time.perf_counter() - t0


def _parse_rates(text: str) -> list[tuple[float, int]]:
    out = []
    for part in filter(None, text.split(",")):
        rate, _, per = part.partition("x")
        out.append((float(rate), int(per or 1)))
    return out


async def run(args: argparse.Namespace) -> None:
    closed_scenarios = [] if args.no_closed else [Scenario("statuses", args.per_post), Scenario("message", 1)]
    open_runs = [(Scenario("statuses", per), rate) for rate, per in _parse_rates(args.rates)]
    print(f"webhooks ingest: {args.concurrency} connections, {args.rounds} rounds x {args.seconds:.0f} s "
          f"(+1 s warm-up), medians; {os.cpu_count()} CPUs shared by server, database and load generator "
          "(its own process)", flush=True)
    max_rps = {"statuses": 3000.0, "message": 6000.0}  # request budget for closed loops (pre-built)

    def budget(scenario: Scenario, rate: float | None) -> int:
        n = int((rate or max_rps[scenario.kind]) * (args.seconds + 1) * 1.05 + args.concurrency)
        return n * scenario.per_post

    waflow_eps: dict[tuple[str, str], float] = {}
    for backend, mode in [(b, m) for b in args.backends.split(",") for m in args.modes.split(",")]:
        async with database(backend) as url:
            # event numbers are never reused within a database: every run is new data (the
            # database is seeded with the messages of events 0..N, so each database starts at 0)
            next_event = {"statuses": 0, "message": 0}
            db = Db(url)
            total_status = args.rounds * (sum(budget(s, None) for s in closed_scenarios if s.kind == "statuses")
                                          + sum(budget(s, r) for s, r in open_runs))
            await db.prepare(total_status // 3 + 3)
            argv, env = waflow_argv(url, mode)
            answered = 0
            async with server(argv, env) as port:
                runs: list[tuple[Scenario, float | None]] = [(s, None) for s in closed_scenarios] + list(open_runs)
                for scenario, rate in runs:
                    results = []
                    for _ in range(args.rounds):
                        first = next_event[scenario.kind]
                        r = await asyncio.to_thread(run_load, port, scenario, first, args.concurrency,
                                                    args.seconds, rate, max_rps[scenario.kind])
                        next_event[scenario.kind] += r.events_used
                        if mode != "ingest":
                            r.backlog_end, r.drain_s = await _drain_wait(db)
                        results.append(r)
                    answered += sum(r.ok for r in results) * scenario.per_post
                    eps = _line(f"waflow {backend}/{mode}", scenario, results,
                                backlog=mode != "ingest" and scenario.kind == "statuses")
                    if rate is None:
                        waflow_eps[(backend, scenario.name)] = eps
            inbox, history, read = await db.counts()
            print(f"  {'':<22} inbox rows {inbox:,} (>= {answered:,} events answered 200 in measured windows); "
                  f"status history rows {history:,}; messages now read {read:,}", flush=True)
            await db.close()
    if args.no_pywa:
        return
    argv, env = pywa_argv()
    next_event = {"statuses": 0, "message": 0}
    async with server(argv, env) as port:
        for scenario in closed_scenarios:
            results = []
            for _ in range(args.rounds):
                first = next_event[scenario.kind]
                r = await asyncio.to_thread(run_load, port, scenario, first, args.concurrency, args.seconds,
                                            None, max_rps[scenario.kind])
                next_event[scenario.kind] += r.events_used
                results.append(r)
            eps = _line("pywa 4.5 / FastAPI", scenario, results, backlog=False)
            for backend in args.backends.split(","):
                mine = waflow_eps.get((backend, scenario.name))
                if mine:
                    print(f"  {'':<22} ratio waflow/{backend} ÷ pywa (closed loop): {mine / eps:.2f}x "
                          "(waflow stores durably and applies statuses; pywa stores nothing)", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.webhooks_ingest", description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--per-post", type=int, default=10)
    parser.add_argument("--rates", default="800x10,3000x1",
                        help="open-loop runs: <POSTs/s>x<statuses per POST>, comma-separated ('' for none)")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--no-pywa", action="store_true")
    parser.add_argument("--no-closed", action="store_true", help="only the open-loop runs")
    parser.add_argument("--modes", default="default",
                        help="default: waflow's configuration (statuses applied inline on SQLite, by the "
                             "in-process StatusProcessor on PostgreSQL); inline / processor: force one; "
                             "ingest: statuses left pending (for a separate worker)")
    args = parser.parse_args(argv)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
