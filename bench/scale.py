"""A real business's size (issue 12): waflow on stores of 1k / 100k / 1M contacts, SQLite and PostgreSQL.

    python -m bench.scale [--parts ingest,dispatch,api,engine] [--sizes 1k,100k,1m] [--dialects sqlite,postgres]
                          [--rounds 3] [--seconds 4] [--concurrency 64] [--limit 1000] [--requests 30] [--quick]

Each size is a store seeded by `waflow.store.seeding` (contacts at the size, the other tables at the
audit's proportions: 2 inbound events, 1 outbound message, 3 status events per contact, a fifth as
many sessions, a tenth as many timers). Seeded stores are cached, keyed by the schema revision and a
fingerprint of the migrations and the seeder (an in-place edit of a migration rebuilds them): SQLite as a
file under `$WAFLOW_SCALE_CACHE` (default `~/.cache/waflow-scale`) with its `SeedInfo` beside it, copied
for each run so a run never changes the cache; PostgreSQL in its own database `waflow_scale_<size>`
(never the `test` database), copied as a template per run, rebuilt when its key differs. One copy per
size and dialect serves every part, in the order api, dispatch, engine, ingest.

Parts, each printed as one table (sizes x dialects side by side, medians over rounds, goals beside):

- ingest: signed single-message webhook POSTs/s, 64 connections back to back, with DISTINCT senders —
  half existing contacts, half new ones — to waflow's webhook tier (`python -m waflow.webhooks`, as
  `bench.webhooks_ingest` runs it, whose load generator and server machinery this reuses), and pywa 4.5
  + FastAPI on the same requests in the same run (the ratio).
- dispatch: the dispatcher at its limit over the big outbound table (`--limit`, default 1,000 msg/s).
  The seeded backlog (the newest 1 % of the outbox, queued and due) is sent first, untimed; then each
  round enqueues `limit x seconds` messages (one transaction) to distinct seeded contacts that have no
  queued row (new numbers once they run out) and an `OutboxDispatcher` in this process sends them to the
  emulator (its own process, enforcing the same limit: 130429 beyond it), as `bench.outbox_dispatch`
  does (its `dispatch_run`). msg/s from the first send to the last outcome committed, % of the limit,
  130429 answers, CPU µs/msg of this process (aiosqlite's threads included; PostgreSQL's server is not).
  Goal: >= 95 % of 1,000 msg/s and <= 500 µs CPU/msg.
- api: the admin API's list and detail routes through a real `waflow serve` (its own process, the
  seeded number and an admin key; engine and dispatcher off, so nothing else runs in it; the graph
  URL is a loopback emulator that receives nothing): `--requests` sequential keep-alive GETs per
  route after 3 warm-up ones, ids from `SeedInfo`; median and p95 ms (the client's ~0.2 ms included).
  Goal: median under 20 ms at full size.
- engine: inbound messages/s through `bench.engine_flow`'s 5-node flow on the seeded store (its flow
  deployed, `--engine-contacts` seeded contacts given a waiting session, `--engine-messages` answers
  each), one `EngineWorker`; msg/s, step p50/p99 ms (the wall time of the round that applied the event),
  CPU µs/msg of this process.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
import sqlite3
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import waflow.store
from bench.outbox_dispatch import dispatch_run, dispatcher_config
from bench.outbox_dispatch import emulator as spawned_emulator
from bench.webhooks_ingest import (
    PNID,
    RoundResult,
    Scenario,
    _envelope,
    pywa_argv,
    request_bytes,
    run_load,
    server,
    waflow_argv,
)
from waflow.cloudapi import CloudAPIClient, Timeouts
from waflow.config import hash_api_key
from waflow.outbox import OutboxDispatcher, make_limiters
from waflow.store import Store
from waflow.store.migrate import head_revision
from waflow.store.seeding import DEFAULT_PHONE_NUMBER_ID, SeedInfo, Sizes, seed_store

SIZES = {"1k": 1_000, "10k": 10_000, "100k": 100_000, "1m": 1_000_000}
DIALECTS = {"sqlite": "sqlite", "postgres": "postgresql", "postgresql": "postgresql"}
PARTS = ("ingest", "dispatch", "api", "engine")
RUN_ORDER = ("api", "dispatch", "engine", "ingest")  # read-only first; ingest adds contacts last
assert PNID == DEFAULT_PHONE_NUMBER_ID  # the webhook bench's number is the seeded one

DISPATCH_GOAL_SHARE, DISPATCH_GOAL_CPU_US = 0.95, 500.0
API_GOAL_MS = 20.0


def sizes_for(contacts: int) -> Sizes:
    return Sizes.audit().scaled(contacts / Sizes.audit().contacts)


def queued_seeded(contacts: int) -> int:
    """How many of the seed's outbound rows are queued (the newest; `seeding._Plan.queued`)."""
    s = sizes_for(contacts)
    return max(5, min(s.outbound_messages // 100, s.contacts))


@dataclass(frozen=True)
class DistinctSenders(Scenario):
    """One text message per POST, each from another sender: even n an existing contact, odd n a new one."""

    contacts: int = 1_000

    @property
    def name(self) -> str:
        return "message x1, distinct senders"

    def build(self, first_event: int, count: int) -> list[bytes]:
        out = []
        for i in range(first_event, first_event + count):
            # existing: the seed's wa_ids (346 + 8 digits); new: 347 + 8 digits, never seeded
            wa_id = f"346{(i // 2) % self.contacts + 1:08d}" if i % 2 == 0 else f"347{i:08d}"
            contact = {"profile": {"name": "Ana"}, "wa_id": wa_id, "user_id": f"ES.{int(wa_id) * 7:020d}"}
            body = _envelope({
                "messaging_product": "whatsapp",
                "metadata": {"display_phone_number": "15550783881", "phone_number_id": PNID},
                "contacts": [contact],
                "messages": [{"from": wa_id, "id": f"wamid.SCALE{self.contacts}x{i:012d}", "timestamp": "1760000000",
                              "type": "text", "text": {"body": "Hola"}}],
            })  # fmt: skip
            out.append(request_bytes(body))
        return out


# -- seeded stores (cached) --------------------------------------------------------------------------


def _cache_dir() -> Path:
    path = Path(os.environ.get("WAFLOW_SCALE_CACHE", Path.home() / ".cache" / "waflow-scale"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def _schema_key() -> str:
    """The head revision and a digest of the migrations and the seeder: a migration edited in place (same
    revision id, other tables or triggers) must not reuse a store seeded under its earlier text."""
    root = Path(waflow.store.__file__).parent
    digest = hashlib.sha256()
    for path in [*sorted((root / "migrations" / "versions").glob("*.py")), root / "seeding.py"]:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return f"{head_revision()}-{digest.hexdigest()[:10]}"


async def _seed(url: str, contacts: int) -> SeedInfo:
    store = Store.open(url)
    try:
        await store.upgrade()
        return await seed_store(store, sizes_for(contacts), phone_number_id=PNID)
    finally:
        await store.close()


def _info_json(info: SeedInfo) -> str:
    return json.dumps(dataclasses.asdict(info), separators=(",", ":"))


def _info_from(text: str) -> SeedInfo:
    return SeedInfo(**json.loads(text))


@dataclass(frozen=True)
class Seeded:
    url: str
    info: SeedInfo
    seeded_s: float | None  # seeding seconds when seeded by this run; None when the cache served


@contextlib.asynccontextmanager
async def seeded_store(dialect: str, contacts: int, label: str) -> AsyncIterator[Seeded]:
    """A URL to a store seeded at `contacts` (a copy of the cache), its `SeedInfo`, the seeding seconds."""
    key = f"{label}-{_schema_key()}"
    if dialect == "sqlite":
        cached = _cache_dir() / f"scale-{key}.db"
        meta = cached.with_suffix(".json")
        seconds = None
        if not cached.exists() or not meta.exists():
            building = cached.with_suffix(".building")
            building.unlink(missing_ok=True)
            info = await _seed(f"sqlite+aiosqlite:///{building}", contacts)
            seconds = info.seconds
            db = sqlite3.connect(building)  # fold the WAL into the file, so the file alone is the store
            try:
                db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                db.close()
            meta.write_text(_info_json(info))
            os.replace(building, cached)
        info = _info_from(meta.read_text())
        with tempfile.TemporaryDirectory() as tmp:
            target = Path(tmp) / "scale.db"
            shutil.copyfile(cached, target)
            yield Seeded(f"sqlite+aiosqlite:///{target}", info, seconds)
        return
    async with _postgres_copy(contacts, label, key) as seeded:
        yield seeded


@contextlib.asynccontextmanager
async def _postgres_copy(contacts: int, label: str, key: str) -> AsyncIterator[Seeded]:
    """`waflow_scale_<size>` (seeded once; its comment: the key and the `SeedInfo`), copied as a template per run."""
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    from waflow.store.testing import admin_urls

    admin = admin_urls()[0]
    name, run_name = f"waflow_scale_{label}", f"waflow_scale_{label}_run"
    engine = create_async_engine(admin, isolation_level="AUTOCOMMIT")
    seconds = None
    try:
        async with engine.connect() as conn:
            comment = (await conn.execute(text(
                "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = :n"), {"n": name}
            )).scalar_one_or_none()  # fmt: skip
            stored_key, _, stored_info = (comment or "").partition("\n")
            if stored_key != key or not stored_info:
                await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                await conn.execute(text(f'CREATE DATABASE "{name}"'))
                info = await _seed(admin.set(database=name).render_as_string(False), contacts)
                seconds = info.seconds
                stored_info = _info_json(info)
                marker = f"{key}\n{stored_info}".replace("'", "''")
                await conn.exec_driver_sql(f"COMMENT ON DATABASE \"{name}\" IS '{marker}'")  # no binds: JSON has colons
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{run_name}" WITH (FORCE)'))
            await conn.execute(text(f'CREATE DATABASE "{run_name}" TEMPLATE "{name}"'))
        try:
            yield Seeded(admin.set(database=run_name).render_as_string(False), _info_from(stored_info), seconds)
        finally:
            async with engine.connect() as conn:
                await conn.execute(text(f'DROP DATABASE IF EXISTS "{run_name}" WITH (FORCE)'))
    finally:
        await engine.dispose()


# -- tables ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Col:
    title: str
    width: int
    fmt: Callable[[object], str]
    goal: str = ""


def _num(spec: str) -> Callable[[object], str]:
    def fmt(value: object) -> str:
        return "-" if value is None else format(value, spec)

    return fmt


@dataclass
class Table:
    """Rows (sizes, or routes) x groups (dialects, or size+dialect) x columns; printed at the end."""

    title: str
    cols: list[Col]
    row_title: str = "size"
    extra: list[Col] = field(default_factory=list)  # per-row columns after the groups (pywa)
    cells: dict[tuple[str, str], dict[str, object]] = field(default_factory=dict)
    extras: dict[str, dict[str, object]] = field(default_factory=dict)
    rows: list[str] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)

    def put(self, row: str, group: str, values: dict[str, object]) -> None:
        if row not in self.rows:
            self.rows.append(row)
        if group not in self.groups:
            self.groups.append(group)
        self.cells[(row, group)] = values

    def render(self) -> str:
        rw = max([len(self.row_title), 6, *(len(r) for r in self.rows)])
        gw = sum(c.width + 1 for c in self.cols)
        lines = [f"== {self.title}"]
        head1 = " " * rw + "".join(" | " + g.center(gw - 1) for g in self.groups)
        head2 = self.row_title.rjust(rw) + "".join(
            " | " + " ".join(c.title.rjust(c.width) for c in self.cols) for _ in self.groups
        )
        if self.extra:
            head1 += " | " + " ".join(" " * c.width for c in self.extra)
            head2 += " | " + " ".join(c.title.rjust(c.width) for c in self.extra)
        lines += [head1.rstrip(), head2]
        for row in self.rows:
            line = row.rjust(rw)
            for g in self.groups:
                values = self.cells.get((row, g), {})
                line += " | " + " ".join(c.fmt(values.get(c.title)).rjust(c.width) for c in self.cols)
            if self.extra:
                ev = self.extras.get(row, {})
                line += " | " + " ".join(c.fmt(ev.get(c.title)).rjust(c.width) for c in self.extra)
            lines.append(line)
        if any(c.goal for c in self.cols):
            goal = "goal".rjust(rw) + "".join(
                " | " + " ".join(c.goal.rjust(c.width) for c in self.cols) for _ in self.groups
            )
            lines.append(goal)
        return "\n".join(lines)


# -- part: ingest --------------------------------------------------------------------------------------


async def _rounds(port: int, scenario: Scenario, args: argparse.Namespace, first: int) -> list[RoundResult]:
    results = []
    for _ in range(args.rounds):
        r = await asyncio.to_thread(run_load, port, scenario, first, args.concurrency, args.seconds, None,
                                    args.max_rps, args.warmup)
        first += r.events_used + args.concurrency
        results.append(r)
    return results


def _median_rps(results: list[RoundResult]) -> float:
    return statistics.median(r.rps() for r in results)


def ingest_table(args: argparse.Namespace) -> Table:
    return Table(
        f"ingest: signed single-message webhook POSTs/s, distinct senders (half new), {args.concurrency} "
        f"connections, {args.rounds} round(s) x {args.seconds:g} s, medians; ratio = waflow / pywa",
        [Col("seeded", 8, lambda v: f"{v:.1f} s" if isinstance(v, float) else "cached"),
         Col("POST/s", 8, _num(",.0f")), Col("p50 ms", 7, _num(".1f")), Col("p99 ms", 7, _num(".1f")),
         Col("ratio", 6, _num(".2f"))],
        extra=[Col("pywa POST/s", 11, _num(",.0f"))],
    )  # fmt: skip


async def ingest_part(
    seeded: Seeded, contacts: int, args: argparse.Namespace, pywa: dict[int, float]
) -> dict[str, object]:
    scenario = DistinctSenders("message", 1, contacts=contacts)
    argv, env = waflow_argv(seeded.url, "default")
    async with server(argv, env) as port:
        results = await _rounds(port, scenario, args, 0)
    if contacts not in pywa and not args.no_pywa:
        argv, env = pywa_argv()
        async with server(argv, env) as port:
            pywa[contacts] = _median_rps(await _rounds(port, scenario, args, 0))
    rps = _median_rps(results)
    theirs = pywa.get(contacts)
    return {"seeded": seeded.seeded_s, "POST/s": rps, "p50 ms": statistics.median(r.pct(0.5) for r in results),
            "p99 ms": statistics.median(r.pct(0.99) for r in results),
            "ratio": rps / theirs if theirs else None}  # fmt: skip


# -- part: dispatch ------------------------------------------------------------------------------------


def dispatch_table(args: argparse.Namespace) -> Table:
    n = int(args.limit * args.seconds)
    return Table(
        f"dispatch: the dispatcher at {args.limit:,.0f} msg/s over the seeded outbox, {n:,} messages x "
        f"{args.rounds} round(s), emulator enforcing the limit; medians (backlog: seeded queued rows sent first, "
        "untimed)",
        [Col("backlog", 7, _num(",d")), Col("msg/s", 7, _num(",.0f")),
         Col("% limit", 7, lambda v: "-" if v is None else f"{v:.1%}", f">= {DISPATCH_GOAL_SHARE:.0%}"),
         Col("130429", 6, _num(",d")),
         Col("CPU µs/msg", 10, _num(",.0f"), f"<= {DISPATCH_GOAL_CPU_US:.0f}")],
    )  # fmt: skip


def _recipients(contacts: int, n: int, round_no: int) -> list[str]:
    """n distinct recipients for a round: seeded contacts (none with a seeded queued row), then new numbers."""
    free = contacts - queued_seeded(contacts)
    first = round_no * n + 1
    existing = [f"346{c:08d}" for c in range(first, min(free, first + n - 1) + 1)]
    fresh = [f"348{round_no:02d}{i:06d}" for i in range(n - len(existing))]
    return existing + fresh


async def _sendable_left(store: Store, first_id: int) -> int:
    """Queued rows with ids >= `first_id` that a dispatcher can send: not in a campaign that is not running.

    The seed puts a quarter of its queued rows in campaigns that are done, where they stay queued and in no
    claim lane, so `OutboxDispatcher.drain` (nothing queued anywhere) would never return on a seeded store.
    An id range of the primary key: a few thousand rows at most, whatever the outbox's size."""
    from sqlalchemy import func, or_, select

    from waflow.store.tables import campaigns, outbound_messages

    o = outbound_messages
    running = select(campaigns.c.id).where(campaigns.c.status == "running")
    stmt = select(func.count()).where(
        o.c.id >= first_id, o.c.status == "queued", or_(o.c.campaign_id.is_(None), o.c.campaign_id.in_(running))
    )
    async with store.read() as conn:
        return int((await conn.execute(stmt)).scalar_one())


def _waiter(timeout: float) -> Callable[[OutboxDispatcher, int], Awaitable[None]]:
    async def wait(dispatcher: OutboxDispatcher, before: int) -> None:
        async with asyncio.timeout(timeout):
            while await _sendable_left(dispatcher.store, before + 1):  # noqa: ASYNC110 (rows, not events)
                await asyncio.sleep(0.01)
            await dispatcher.recorder.flush()

    return wait


async def _drain_backlog(store: Store, info: SeedInfo, base_url: str, token: str, limit: float) -> int:
    """Send what the seed left queued and sendable (untimed), so a round's figures are its own messages'."""
    queued = await _sendable_left(store, info.queued_outbound_id)
    if not queued:
        return 0
    client = CloudAPIClient(phone_number_id=PNID, token=token, base_url=base_url, timeouts=Timeouts(total=10))
    try:
        dispatcher = OutboxDispatcher(store, client, limiters=make_limiters(None), config=dispatcher_config(limit))
        async with dispatcher.running():
            await _waiter(queued / limit * 3 + 60)(dispatcher, info.queued_outbound_id - 1)
    finally:
        await client.aclose()
    return queued


async def dispatch_part(seeded: Seeded, contacts: int, args: argparse.Namespace, label: str) -> dict[str, object]:
    n = int(args.limit * args.seconds)
    store = Store.open(seeded.url)
    try:
        async with spawned_emulator(args.limit) as (base_url, token):
            backlog = await _drain_backlog(store, seeded.info, base_url, token, args.limit)
            rounds = []
            for r in range(args.rounds):
                if r or backlog:
                    await asyncio.sleep(1.2)  # the emulator's bucket refills
                load = os.getloadavg()[0]
                rate, throttled, cpu_us, commits = await dispatch_run(
                    store, base_url, token, args.limit, _recipients(contacts, n, r), _waiter(n / args.limit * 3 + 30)
                )
                rounds.append((rate, throttled, cpu_us))
                print(f"  dispatch {label:>5} {store.dialect:<10} round {r + 1}: {rate:7.1f} msg/s ({throttled} x "
                      f"130429, {cpu_us:.0f} µs CPU/msg, {commits} record commits)  load {load:.2f}",
                      flush=True)  # fmt: skip
    finally:
        await store.close()
    rate = statistics.median(r[0] for r in rounds)
    return {"backlog": backlog, "msg/s": rate, "% limit": rate / args.limit,
            "130429": sum(r[1] for r in rounds), "CPU µs/msg": statistics.median(r[2] for r in rounds)}  # fmt: skip


# -- part: api -----------------------------------------------------------------------------------------


def api_routes(info: SeedInfo) -> list[tuple[str, str]]:
    """(label, path) of the routes measured, with ids into the seeded data."""
    return [
        ("handoff", "/api/v1/handoff"),
        ("contact", f"/api/v1/contacts/{info.contact_key}"),
        ("session", f"/api/v1/sessions/{info.session_id}"),
        ("messages?contact", f"/api/v1/messages?contact={info.contact_key}"),
        ("message", f"/api/v1/messages/{info.delivered_outbound_id}"),
        ("metrics", "/metrics"),
        ("contacts?number", f"/api/v1/contacts?phone_number_id={info.phone_number_id}"),
        ("sessions?waiting", "/api/v1/sessions?state=waiting"),
        ("campaign", f"/api/v1/campaigns/{info.campaign_id}"),
    ]


def api_table(args: argparse.Namespace) -> Table:
    return Table(
        f"api: GET through `waflow serve` on the seeded store, {args.requests} sequential keep-alive requests per "
        f"route (after 3 warm-up), ms; medians over {args.rounds} round(s)",
        [Col("p50", 6, _num(".1f"), f"< {API_GOAL_MS:.0f}"), Col("p95", 6, _num(".1f"))],
        row_title="route",
    )


def _serve_config(folder: Path, store_url: str, graph_url: str, port: int) -> Path:
    """The seeded number (the emulator's default ids and secrets), an admin key, engine and dispatcher off."""
    from waflow.emulator import EmulatorConfig
    from waflow.server.testing import API_KEY

    emu = EmulatorConfig()
    assert emu.phone_number_id == DEFAULT_PHONE_NUMBER_ID
    token = folder / "access-token"
    token.write_text(emu.access_token)
    q = json.dumps  # a TOML basic string is a JSON string
    text = "\n".join([
        f"store_url = {q(store_url)}", 'log_level = "warning"', "",
        "[graph]", f"base_url = {q(graph_url)}", "",
        "[server]", f"port = {port}", "run_engine = false", "run_dispatcher = false", "",
        "[api]", f"keys = [{q(hash_api_key(API_KEY))}]", "",
        "[[numbers]]", f"phone_number_id = {q(emu.phone_number_id)}", f"waba_id = {q(emu.waba_id)}",
        f"token = {q(f'file:{token}')}", f"app_secret = {q(emu.app_secret)}",
        f"verify_token = {q(emu.verify_token)}", "throughput = 80",
    ])  # fmt: skip
    path = folder / "waflow.toml"
    path.write_text(text + "\n")
    return path


def _pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def api_part(seeded: Seeded, args: argparse.Namespace) -> dict[str, dict[str, object]]:
    from waflow.emulator import run_emulator
    from waflow.server.testing import ServeProcess, free_port

    routes = api_routes(seeded.info)
    per_round: dict[str, list[tuple[float, float]]] = {label: [] for label, _ in routes}
    errors: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="waflow-scale-api-") as tmp:
        async with run_emulator() as emu:  # loopback; with the dispatcher off nothing is sent to it
            port = free_port()
            serve = ServeProcess(_serve_config(Path(tmp), seeded.url, emu.base_url, port), port)
            await serve.start(timeout=120)
            try:
                async with serve.api() as client:
                    for _ in range(args.rounds):
                        for label, path in routes:
                            times = []
                            for i in range(3 + args.requests):
                                t0 = time.perf_counter()
                                resp = await client.get(path)
                                elapsed = (time.perf_counter() - t0) * 1000
                                if resp.status_code != 200:
                                    errors[label] = f"{resp.status_code} {resp.text[:200]}"
                                    break
                                if i >= 3:
                                    times.append(elapsed)
                            if times:
                                per_round[label].append((statistics.median(times), _pct(times, 0.95)))
            finally:
                await serve.stop()
    for label, message in errors.items():
        print(f"  api: GET {dict(routes)[label]} answered {message}", flush=True)
    out: dict[str, dict[str, object]] = {}
    for label, _ in routes:
        got = per_round[label]
        out[label] = {"p50": statistics.median(g[0] for g in got) if got else None,
                      "p95": statistics.median(g[1] for g in got) if got else None}  # fmt: skip
    return out


# -- part: engine --------------------------------------------------------------------------------------


def engine_table(args: argparse.Namespace) -> Table:
    return Table(
        f"engine: inbound messages/s through bench.engine_flow's 5-node flow on the seeded store, "
        f"up to {args.engine_contacts} contacts (those past the sessions') x {args.engine_messages} answers per "
        f"round; medians over {args.rounds} round(s) (seeded pending events applied first, untimed)",
        [Col("backlog", 7, _num(",d")), Col("msg/s", 7, _num(",.0f")), Col("p50 ms", 7, _num(".2f")),
         Col("p99 ms", 7, _num(".2f")), Col("CPU µs/msg", 10, _num(",.0f"))],
    )  # fmt: skip


async def _engine_flows(store: Store, info: SeedInfo) -> None:
    """The seed's flow versions hold `{}`, which the engine's catalog cannot load (no event would be applied):
    deploy a real definition (the bench flow without its trigger) as each seeded flow's active version."""
    from bench.engine_flow import FLOW
    from waflow.engine.flows.loader import load_flow_text
    from waflow.engine.runtime import deploy_flow

    async with store.begin() as conn:
        for i in range(info.counts["flow_versions"]):
            text = FLOW.replace("id: bench", f"id: flow{i}").replace("triggers: [{any_first_message: true}]\n", "")
            await deploy_flow(conn, load_flow_text(text))


async def _engine_contacts(store: Store, info: SeedInfo, wanted: int) -> list[tuple[int, str]]:
    """(contact id, wa_id) of seeded contacts without any session (ids past the sessions'), given a session
    waiting at the bench flow's question."""
    from datetime import UTC, datetime

    from sqlalchemy import insert

    from bench.engine_flow import FLOW
    from waflow.engine.flows.loader import load_flow_text
    from waflow.engine.runtime import deploy_flow
    from waflow.engine.runtime.deploy import flow_versions
    from waflow.store.tables import sessions

    first = info.counts["sessions"] + 1
    chosen = [(c, f"346{c:08d}") for c in range(first, min(info.counts["contacts"], first + wanted - 1) + 1)]
    now = datetime.now(UTC)
    async with store.begin() as conn:
        await deploy_flow(conn, load_flow_text(FLOW))
        record = await flow_versions.active(conn, "bench")
        assert record is not None
        await conn.execute(insert(sessions), [
            {"contact_id": c, "flow_id": "bench", "flow_version": record.content_hash, "state": "waiting",
             "current_node": "ask", "vars": {"count": 0}, "waiting_for": "reply", "step_count": 1, "started_at": now,
             "updated_at": now, "ended_at": None, "end_reason": None, "runtime": {"seq": 1},
             "expires_at": now.replace(year=now.year + 1)} for c, _ in chosen
        ])  # fmt: skip
    return chosen


async def _engine_fill(store: Store, chosen: list[tuple[int, str]], messages: int, run: int) -> int:
    from datetime import UTC, datetime

    from waflow.canonical import ContactRef, InboundMessage
    from waflow.store import NewInboundEvent

    now = datetime.now(UTC)
    events = [
        NewInboundEvent.from_message(InboundMessage(
            phone_number_id=PNID, message_id=f"wamid.scale{run}.{m}.{c}", timestamp=now, type="text",
            contact=ContactRef(wa_id=wa, profile_name=f"Contact {c}"), text=f"pizza {m}",
            content={"body": f"pizza {m}"},
        ), now)
        for m in range(messages) for c, wa in chosen
    ]  # fmt: skip
    for start in range(0, len(events), 5000):
        async with store.begin() as conn:
            await store.inbox.insert_events(conn, events[start : start + 5000])
    return len(events)


async def engine_part(seeded: Seeded, args: argparse.Namespace, label: str) -> dict[str, object]:
    from waflow.engine.runtime import EngineConfig, EngineWorker

    store = Store.open(seeded.url, pool_size=18)
    rounds = []
    try:
        await _engine_flows(store, seeded.info)
        worker = EngineWorker(store, EngineConfig(concurrency=16))
        backlog = 0
        while count := await worker.run_once():  # the seed's pending events, untimed
            backlog += count
        chosen = await _engine_contacts(store, seeded.info, args.engine_contacts)
        for r in range(args.rounds):
            total = await _engine_fill(store, chosen, args.engine_messages, r)
            latencies: list[float] = []
            started, cpu, done = time.perf_counter(), time.process_time(), 0
            while done < total:
                t0 = time.perf_counter()
                count = await worker.run_once()
                latencies += [time.perf_counter() - t0] * count
                done += count
                if count == 0:
                    raise RuntimeError(f"engine stalled at {done}/{total}")
            seconds = time.perf_counter() - started
            cpu_us = (time.process_time() - cpu) / total * 1e6
            rounds.append((total / seconds, _pct(latencies, 0.5) * 1000, _pct(latencies, 0.99) * 1000, cpu_us))
            print(f"  engine {label:>5} {store.dialect:<10} round {r + 1}: {rounds[-1][0]:7.0f} msg/s  p50 "
                  f"{rounds[-1][1]:.2f} ms  p99 {rounds[-1][2]:.2f} ms  {cpu_us:.0f} µs CPU/msg", flush=True)
    finally:
        await store.close()
    med = [statistics.median(r[i] for r in rounds) for i in range(4)]
    return {"backlog": backlog, "msg/s": med[0], "p50 ms": med[1], "p99 ms": med[2], "CPU µs/msg": med[3]}


# -- driver ----------------------------------------------------------------------------------------------


async def run(args: argparse.Namespace) -> dict[str, Table]:
    labels = [s.strip().lower() for s in args.sizes.split(",") if s.strip()]
    dialects = [DIALECTS[d.strip()] for d in args.dialects.split(",") if d.strip()]
    parts = [p for p in RUN_ORDER if p in args.parts]
    tables: dict[str, Table] = {}
    if "ingest" in parts:
        tables["ingest"] = ingest_table(args)
    if "dispatch" in parts:
        tables["dispatch"] = dispatch_table(args)
    if "api" in parts:
        tables["api"] = api_table(args)
    if "engine" in parts:
        tables["engine"] = engine_table(args)
    pywa: dict[int, float] = {}
    for label in labels:
        contacts = SIZES[label] if label in SIZES else int(label)
        for dialect in dialects:
            started = time.monotonic()
            async with seeded_store(dialect, contacts, label) as seeded:
                how = f"seeded in {seeded.seeded_s:.1f} s" if seeded.seeded_s is not None else "cached"
                print(f"-- {label} contacts on {dialect} ({how}, ready after {time.monotonic() - started:.1f} s)",
                      flush=True)  # fmt: skip
                for part in parts:
                    t0 = time.monotonic()
                    if part == "api":
                        for route, values in (await api_part(seeded, args)).items():
                            tables["api"].put(route, f"{label} {dialect}", values)
                    elif part == "dispatch":
                        tables["dispatch"].put(label, dialect, await dispatch_part(seeded, contacts, args, label))
                    elif part == "engine":
                        tables["engine"].put(label, dialect, await engine_part(seeded, args, label))
                    elif part == "ingest":
                        tables["ingest"].put(label, dialect, await ingest_part(seeded, contacts, args, pywa))
                        tables["ingest"].extras[label] = {"pywa POST/s": pywa.get(contacts)}
                    print(f"  {part} on {label} {dialect}: {time.monotonic() - t0:.1f} s", flush=True)
    for part in PARTS:
        if part in tables:
            print("\n" + tables[part].render(), flush=True)
    return tables


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", default=",".join(PARTS), help=f"any of {', '.join(PARTS)}")
    parser.add_argument("--sizes", default="1k,100k,1m")
    parser.add_argument("--dialects", default="sqlite,postgres")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=4.0, help="ingest: load per round; dispatch: limit x this")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--no-pywa", action="store_true")
    parser.add_argument("--warmup", type=float, default=1.0, help="ingest: seconds of load before the clock")
    parser.add_argument("--limit", type=float, default=None,
                        help="dispatch: messages/s, waflow and emulator (default 1,000; --quick: 200)")
    parser.add_argument("--requests", type=int, default=30, help="api: requests per route and round")
    parser.add_argument("--engine-contacts", type=int, default=2000)
    parser.add_argument("--engine-messages", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="a smoke run: 1k, SQLite, 1 round of 1 s, 10 GETs a route")
    args = parser.parse_args(argv)
    args.parts = {p.strip() for p in args.parts.split(",") if p.strip()}
    unknown = args.parts - set(PARTS)
    if unknown:
        parser.error(f"unknown part(s): {', '.join(sorted(unknown))} (known: {', '.join(PARTS)})")
    if args.quick:
        args.sizes, args.rounds, args.seconds = "1k", 1, 1.0
        args.requests, args.engine_contacts, args.engine_messages = 10, 200, 2
        args.limit = 200.0 if args.limit is None else args.limit
        args.warmup, args.max_rps = 0.3, 2000.0
        if "--dialects" not in (argv or []):
            args.dialects = "sqlite"
    args.limit = 1000.0 if args.limit is None else args.limit
    args.max_rps = getattr(args, "max_rps", 4000.0)  # requests built per round: enough for this rate
    print(f"bench.scale: parts {', '.join(p for p in PARTS if p in args.parts)}; sizes {args.sizes}; "
          f"{args.dialects}; {args.rounds} round(s); {os.cpu_count()} CPUs shared (load {os.getloadavg()[0]:.2f})",
          flush=True)  # fmt: skip
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
