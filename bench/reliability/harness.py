"""What every scenario shares: a deployment (the emulator in this process, `waflow serve` / `waflow worker` as
real processes), the pizza flow driven by simulated users, and the verdict read from the store and the emulator.

The emulator lives in the suite's process, so it outlives every process the suite kills; its webhooks to a
dead server are retried on a compressed schedule (`RETRY_SCHEDULE`), like Meta retries for days.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import random
import secrets
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from waflow.emulator import EmulatorConfig, EmulatorHandle, SimulatedUser, run_emulator, serve_asgi
from waflow.server.testing import API_KEY, ServeProcess, free_port, write_config
from waflow.store import Store, build_callback_data
from waflow.store.tables import contacts, inbound_events, outbound_messages, send_attempts, sessions

from .report import Check

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
# ~5 minutes of retries: a webhook to a dead process is delivered once it is back (Meta retries for days).
RETRY_SCHEDULE = [0.05, 0.1, 0.2, 0.4, 0.8, *([1.0] * 300)]
# The pizza flow, step by step: what the user does after the n-th reply, and the reply's node.
NODES = ["greet", "size", "address", "placed"]
ADDRESS = "12 Main Street, Springfield"
MAX_ATTEMPTS = 8  # RetryPolicy defaults (kept by bench.reliability.proc)
MAX_THROTTLES = 30


# -- processes ----------------------------------------------------------------------------------------


class Proc(ServeProcess):
    """`waflow serve` (or `waflow worker`) as a real process, with compressed recovery timings
    (`bench.reliability.proc`), its own environment, and SIGKILL."""

    def __init__(self, config: Path, port: int, *, role: str = "serve", env: Mapping[str, str] | None = None,
                 log: Path | None = None) -> None:
        super().__init__(config, port, log=log or config.with_name(f"{role}-{port}.log"))
        self.role = role
        self.env = dict(env or {})
        self.kills = 0

    async def start(self, timeout: float = 60.0) -> None:  # noqa: ASYNC109
        argv = [sys.executable, "-m", "bench.reliability.proc", "-c", str(self.config)]
        if self.role == "worker":
            argv.append("--worker")
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
        offset = self.log.stat().st_size if self.log.exists() else 0
        with open(self.log, "ab") as out:  # noqa: ASYNC230
            self.proc = subprocess.Popen(argv, stdout=out, stderr=out, env=env, cwd=ROOT)  # noqa: ASYNC220
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient() as client:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"waflow {self.role} exited with {self.proc.returncode}: {self.tail()}")
                if self.role == "worker":
                    with open(self.log, "rb") as f:  # noqa: ASYNC230
                        f.seek(offset)
                        if b"worker started" in f.read():
                            return
                else:
                    with contextlib.suppress(httpx.HTTPError):
                        if (await client.get(f"{self.url}/readyz", timeout=1)).status_code == 200:
                            return
                await asyncio.sleep(0.05)
        raise TimeoutError(f"waflow {self.role} not ready after {timeout} s: {self.tail()}")

    def tail(self, n: int = 2000) -> str:
        return self.log.read_text(errors="replace")[-n:] if self.log.exists() else ""

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    async def kill(self) -> None:
        """SIGKILL: no shutdown, no flush; leases and in-flight sends stay as they were."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        while self.proc.poll() is None:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        self.kills += 1

    async def close(self) -> None:
        if self.alive():
            with contextlib.suppress(TimeoutError):
                await self.stop(20)
        if self.alive():
            await self.kill()


# -- the deployment -----------------------------------------------------------------------------------


def orders_app() -> Starlette:
    """The order API the pizza flow's `http` node calls."""
    counter = itertools.count(1)

    async def create(request: Request) -> JSONResponse:
        await request.body()
        return JSONResponse({"id": f"P{next(counter)}"}, status_code=201)

    return Starlette(routes=[Route("/orders", create, methods=["POST"])])


def pizza_flows(folder: Path, api_base: str) -> Path:
    """examples/pizza.yaml (and the flow it jumps to) with its order API at `api_base`."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("pizza.yaml", "order_tracking.yaml"):
        text = (EXAMPLES / name).read_text("utf-8").replace("http://127.0.0.1:8765", api_base)
        (folder / name).write_text(text, "utf-8")
    return folder


@dataclass
class Deployment:
    emu: EmulatorHandle
    folder: Path
    config: Path
    store_url: str
    procs: list[Proc]
    token_file: Path
    tokens: list[str] = field(default_factory=list)

    @property
    def serve(self) -> Proc:
        return next(p for p in self.procs if p.role == "serve")

    def api(self) -> httpx.AsyncClient:
        return self.serve.api()

    def secrets(self) -> dict[str, str]:
        """Every secret of this deployment, for the log scan."""
        cfg = self.emu.config
        out = {"app secret": cfg.app_secret, "verify token": cfg.verify_token, "admin key": API_KEY}
        for i, token in enumerate(dict.fromkeys([*cfg.access_tokens, *self.tokens])):
            out[f"access token {i}"] = token
        return out

    def logs(self) -> list[Path]:
        return sorted({p.log for p in self.procs if p.log.exists()})

    def rotate_token(self) -> str:
        """Expire the token at the emulator and write the new one where `file:` reads it."""
        token = self.emu.rotate_token()
        self.tokens.append(token)
        self.token_file.write_text(token)
        with open(self.folder / "tokens.txt", "a") as f:  # for the log scan
            f.write(token + "\n")
        return token

    async def open_store(self) -> Store:
        return Store.open(self.store_url)


@contextlib.asynccontextmanager
async def deployment(
    folder: Path,
    *,
    roles: Sequence[str] = ("serve",),
    store_url: str | None = None,
    emulator: Mapping[str, Any] | None = None,
    server: Mapping[str, Any] | None = None,
    top: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    flows: bool | Path = True,
) -> AsyncIterator[Deployment]:
    """The emulator and the order API in this process; one process per role, on a fresh database.
    `flows`: the pizza flows (True), none (False), or this folder's flows."""
    folder.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240
    emu_cfg = EmulatorConfig(
        app_secret=f"rel-secret-{secrets.token_hex(12)}", verify_token=f"rel-verify-{secrets.token_hex(8)}",
        access_tokens=[f"EAArel{secrets.token_hex(16)}"], webhook_retry_schedule=RETRY_SCHEDULE,
        webhook_timeout_s=5.0, hang_seconds=4.0, seed=7, **(emulator or {}),
    )
    async with run_emulator(emu_cfg) as emu, serve_asgi(orders_app()) as orders:
        port = free_port()
        emu.set_callback(f"http://127.0.0.1:{port}/webhook")
        flows_dir = flows if isinstance(flows, Path) else pizza_flows(folder / "flows", orders) if flows else None
        config = write_config(folder, emu, port=port, flows_dir=flows_dir, server=server,
                              top={"log_format": "json", **(top or {})})
        url = store_url or f"sqlite+aiosqlite:///{folder / 'waflow.db'}"
        proc_env = {"WAFLOW_STORE_URL": url, "WAFLOW_LOG_LEVEL": "info", "WAFLOW_GRAPH__TIMEOUT_S": "2",
                    **(env or {})}
        procs: list[Proc] = []
        for i, role in enumerate(roles):
            # a second serve takes webhooks and API calls on its own port; the emulator calls the first
            procs.append(Proc(config, port if i == 0 else free_port(), role=role, env=proc_env,
                              log=folder / f"{role}-{i}.log"))
        dep = Deployment(emu, folder, config, url, procs, folder / "access-token")
        (folder / "tokens.txt").write_text("".join(t + "\n" for t in emu_cfg.access_tokens))
        try:
            for p in procs:
                if p.role == "serve" and p.port != port:
                    p.env = {**proc_env, "WAFLOW_SERVER__PORT": str(p.port)}
                await p.start()
            yield dep
        finally:
            for p in procs:
                await p.close()


# -- conversations ------------------------------------------------------------------------------------


@dataclass
class Conversation:
    user: SimulatedUser
    ended: bool = False
    error: str | None = None
    answer_ms: list[float] = field(default_factory=list)


async def _next(user: SimulatedUser, n: int, timeout: float) -> Any:  # noqa: ASYNC109
    """The n-th message the user received (polled every 20 ms: thousands of users wait at once)."""
    deadline = time.monotonic() + timeout
    while len(got := user.received()) < n:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{user.wa_id} received {len(got)} of {n} messages")
        await asyncio.sleep(0.02)
    return got[n - 1]


async def converse(conv: Conversation, *, think: float = 0.2, timeout: float = 120.0) -> None:  # noqa: ASYNC109
    """One pizza order: pizza → [Order a pizza] → Medium → the address → 'Order P..' (then the session ends)."""
    user = conv.user
    rng = random.Random(user.wa_id)

    async def step(n: int, act: Any) -> Any:
        t0 = time.perf_counter()
        await act
        msg = await _next(user, n, timeout)
        conv.answer_ms.append((time.perf_counter() - t0) * 1000)
        await asyncio.sleep(rng.uniform(0, think))
        return msg

    try:
        greet = await step(1, user.send_text("pizza", wait=False))
        size = await step(2, user.reply_button(to_message=greet.wamid, id="order", title="Order a pizza", wait=False))
        await step(3, user.reply_list(to_message=size.wamid, id="medium", title="Medium", wait=False))
        placed = await step(4, user.send_text(ADDRESS, wait=False))
        body = (placed.content or {}).get("body", "") if isinstance(placed.content, dict) else ""
        conv.ended = str(body).startswith("Order ")
        if not conv.ended:
            conv.error = f"last reply was {body!r}"
    except TimeoutError as exc:
        conv.error = str(exc)


async def run_conversations(emu: EmulatorHandle, count: int, *, over_s: float, prefix: str = "3461",
                            think: float = 0.2, timeout: float = 120.0) -> list[Conversation]:  # noqa: ASYNC109
    """`count` users start their order spread over `over_s` seconds; returns when every one ended or gave up."""
    convs = [Conversation(emu.user(f"{prefix}{i:07d}", name=f"U{i}")) for i in range(count)]
    gap = over_s / max(1, count)

    async def later(i: int, conv: Conversation) -> None:
        await asyncio.sleep(i * gap)
        await converse(conv, think=think, timeout=timeout)

    await asyncio.gather(*(later(i, c) for i, c in enumerate(convs)))
    return convs


# -- the verdict --------------------------------------------------------------------------------------


@dataclass
class Snapshot:
    rows: list[Any]
    attempts: dict[int, int]
    events: list[Any]
    sessions: list[Any]


async def snapshot(store: Store) -> Snapshot:
    o, c, s = outbound_messages, contacts, sessions
    async with store.read() as conn:
        rows = (await conn.execute(select(
            o.c.id, o.c.contact_key, o.c.status, o.c.node_id, o.c.attempts, o.c.throttles, o.c.error_text,
            o.c.provider_message_id).order_by(o.c.id))).all()
        attempts: dict[Any, Any] = dict((await conn.execute(
            select(send_attempts.c.outbound_id, func.count()).group_by(send_attempts.c.outbound_id))).all())
        events = (await conn.execute(select(
            inbound_events.c.provider_message_id, inbound_events.c.contact_key, inbound_events.c.state,
            inbound_events.c.attempts).where(inbound_events.c.kind == "message"))).all()
        sess = (await conn.execute(select(c.c.contact_key, s.c.state, s.c.flow_id, s.c.current_node,
                                          s.c.end_reason).join(c, c.c.id == s.c.contact_id))).all()
    return Snapshot(list(rows), {int(k): int(v) for k, v in attempts.items()}, list(events), list(sess))


async def wait_settled(dep: Deployment, users: Sequence[str], *, timeout: float,  # noqa: ASYNC109
                       final: Sequence[str] = ("read",)) -> Snapshot:
    """Until every outbound row is final and every user's event is done (or `timeout`)."""
    store = await dep.open_store()
    try:
        deadline = time.monotonic() + timeout
        while True:
            snap = await snapshot(store)
            pending_rows = [r for r in snap.rows if r.status not in final and r.status != "failed"]
            pending_events = [e for e in snap.events if e.state != "done"]
            if (not pending_rows and not pending_events) or time.monotonic() > deadline:
                with contextlib.suppress(TimeoutError):
                    await dep.emu.webhooks_idle(5)
                return await snapshot(store)
            await asyncio.sleep(0.25)
    finally:
        await store.close()


@dataclass
class Verdict:
    checks: list[Check]
    notes: list[str]
    figures: dict[str, Any]


def judge(emu: EmulatorHandle, convs: Sequence[Conversation], snap: Snapshot, *,
          final: Sequence[str] = ("read",), max_attempts: int | None = None) -> Verdict:
    """Every conversation ended; every inbound message processed once; every reply reached its user exactly
    once and in order (the emulator's log is the judge); statuses final; attempts within their bounds."""
    notes: list[str] = []
    users = {c.user.wa_id: c for c in convs}
    n = len(convs)

    ended_sessions = {r.contact_key for r in snap.sessions if r.state == "ended" and r.flow_id == "pizza"}
    ended = [w for w, c in users.items() if c.ended and w in ended_sessions]
    if len(ended) < n:
        bad = [(w, c.error) for w, c in users.items() if w not in set(ended)][:3]
        notes.append(f"not ended: {bad}")

    # inbound: every message each user sent is in the inbox exactly once, done
    sent_ids = [m["id"] for c in convs for m in c.user.sent()]
    by_id = Counter(e.provider_message_id for e in snap.events)
    done = {e.provider_message_id for e in snap.events if e.state == "done"}
    in_lost = [w for w in sent_ids if w not in done]
    in_dup = [w for w in sent_ids if by_id[w] > 1]
    if in_lost:
        notes.append(f"inbound not processed: {in_lost[:3]}")

    # sessions consistent: one session per user; exactly the flow's four replies, node by node
    sess_per_user = Counter(r.contact_key for r in snap.sessions)
    rows_by_user: dict[str, list[Any]] = defaultdict(list)
    for r in snap.rows:
        rows_by_user[r.contact_key].append(r)
    inconsistent = [w for w in users if sess_per_user[w] != 1 or [r.node_id for r in rows_by_user[w]] != NODES]
    if inconsistent:
        w = inconsistent[0]
        nodes = [r.node_id for r in rows_by_user[w]]
        notes.append(f"inconsistent session {w}: sessions={sess_per_user[w]} nodes={nodes}")

    # outbound: the emulator's log is the judge
    sends = emu.sends_by_callback_data()
    ours = {build_callback_data(r.id) for r in snap.rows}
    lost = [r.id for r in snap.rows if sends.get(build_callback_data(r.id), 0) == 0 and r.status != "failed"]
    dups = [r.id for r in snap.rows if sends.get(build_callback_data(r.id), 0) > 1]
    phantom = sum(v for k, v in sends.items() if k not in ours)
    if dups:
        notes.append(f"sent more than once: {[(i, sends[build_callback_data(i)]) for i in dups[:5]]}")
    if lost:
        notes.append(f"never reached the user: {lost[:5]}")
    order_bad = []
    for w, conv in users.items():
        got = [m.callback_data for m in conv.user.received()]
        want = [build_callback_data(r.id) for r in rows_by_user[w]]
        if [g for g in got if g in set(want)] != [x for x in want if x in set(got)] or len(got) != len(set(got)):
            order_bad.append(w)
    if order_bad:
        notes.append(f"order violated for {order_bad[:3]}")

    # statuses: final in the store, and the same as the emulator's
    wamid_status = {m.wamid: m.status for m in emu.sent()}
    not_final = [r.id for r in snap.rows if r.status not in final]
    mismatch = [r.id for r in snap.rows
                if r.provider_message_id and wamid_status.get(r.provider_message_id, r.status) != r.status]
    if not_final:
        notes.append(f"not final: {[(r.id, r.status, r.error_text) for r in snap.rows if r.status not in final][:3]}")

    max_tries = max(snap.attempts.values(), default=0)
    max_failures = max((r.attempts - r.throttles for r in snap.rows), default=0)
    max_throttles = max((r.throttles for r in snap.rows), default=0)
    latencies = sorted(x for c in convs for x in c.answer_ms)
    p99 = latencies[int(0.99 * (len(latencies) - 1))] if latencies else 0.0
    checks = [
        Check("conversations ended", len(ended) == n, f"{len(ended)}/{n}"),
        Check("inbound processed once", not in_lost and not in_dup and not inconsistent,
              f"{len(sent_ids)} msgs, {len(in_lost)} lost, {len(in_dup)} dup, {len(inconsistent)} inconsistent"),
        Check("replies exactly once", not lost and not dups and not phantom,
              f"{len(snap.rows)} rows, {len(lost)} lost, {len(dups)} dup, {phantom} phantom"),
        Check("per-user order", not order_bad, f"{len(order_bad)} violations"),
        Check("statuses final", not not_final and not mismatch,
              f"{len(snap.rows) - len(not_final)}/{len(snap.rows)} {'/'.join(final)}, {len(mismatch)} ≠ emulator"),
    ]
    if max_attempts is not None:
        within = max_failures <= max_attempts and max_throttles <= MAX_THROTTLES + 1
        checks.append(Check("retries within bounds", within,
                            f"max {max_tries} tries/msg ({max_failures} failed ≤ {max_attempts}, "
                            f"{max_throttles} throttled ≤ {MAX_THROTTLES + 1})"))
    figures = {"p99_ms": p99, "max_tries": max_tries, "ended": len(ended), "dups": len(dups), "lost": len(lost)}
    return Verdict(checks, notes, figures)
