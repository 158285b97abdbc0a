"""Fill an empty store with a realistic business's worth of rows, fast (plan tests, `bench.scale`).

`seed_store(store, Sizes.audit())` writes what the scale audit (issue 12) assumes a real business
holds — 1M contacts, 2M inbound events, 1M outbound messages, 3M status events, 200k sessions,
100k timers — directly with SQL: one `INSERT ... SELECT` per table over a generated series
(SQLite: a recursive CTE, run on aiosqlite's thread in one hop; PostgreSQL: `generate_series`),
all in one transaction. No repository code runs, so seeding costs what the database needs to
write the rows and their indexes, not what the application needs per row.

The shapes are what the hot statements meet in production:

- contacts: distinct wa_ids (`346` + 8 digits), a fifth also with a business-scoped user_id,
  1 % opted out, `last_inbound_at` spread over the last 30 days;
- inbound_events: 60 % messages (`msg:wamid.IN...`), 40 % statuses (`st:wamid.OUT...:delivered`),
  all `done` but the newest few (`pending`, with canonical payloads the engine can parse);
- outbound_messages: mostly read / delivered / sent with a wamid, 2 % failed, the newest 1 %
  queued and due (one per recipient); a third carry a session_id, a quarter a campaign_id;
- status_events: ~3 per sent message (sent, delivered, read), plus a few held (no message yet);
- send_attempts: one per sent message;
- sessions: mostly ended; the newest 5 % not ended — at most one per contact (the unique partial
  index) — waiting (80 %), in handoff (15 %) or running;
- timers: mostly fired or cancelled, the newest 5 % pending on active sessions (some already due);
- a few flow versions (one active per flow, with an empty `{}` definition: the store knows no flow
  format, so a caller that runs the engine on a seeded store deploys real flows over them, as
  `bench.scale` does) and campaigns (one running, which holds every queued campaign row).

Statistics: PostgreSQL gets `VACUUM ANALYZE` afterwards, as autovacuum would give a production
database. SQLite gets nothing: the store never runs `ANALYZE` or `PRAGMA optimize`, so a plan
check must see the planner without `sqlite_stat1`, as production does.

Ids are explicit (1..n per table, so rows can refer to each other arithmetically); PostgreSQL's
sequences are moved past them afterwards, so the store's own inserts continue normally.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timedelta

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from waflow.store.bulk import sqlite_call
from waflow.store.store import Store
from waflow.store.tables import metadata
from waflow.store.types import utcnow

DEFAULT_PHONE_NUMBER_ID = "106540352242922"
SPAN = timedelta(days=30)  # the history the rows are spread over, ending now


@dataclass(frozen=True)
class Sizes:
    """Row counts per table (status events: about `status_events / outbound_messages` per sent message)."""

    contacts: int
    inbound_events: int
    outbound_messages: int
    status_events: int
    sessions: int
    timers: int
    campaigns: int = 20
    flows: int = 3
    send_attempts: int | None = None  # default: one per sent outbound message

    @classmethod
    def audit(cls) -> Sizes:
        """The sizes of a real business, as issue 12's audit assumes them."""
        return cls(
            contacts=1_000_000,
            inbound_events=2_000_000,
            outbound_messages=1_000_000,
            status_events=3_000_000,
            sessions=200_000,
            timers=100_000,
        )

    def scaled(self, factor: float) -> Sizes:
        """Every table's count times `factor` (at least 1 row each; campaigns and flows are kept)."""
        counts = {
            f.name: max(1, round(getattr(self, f.name) * factor))
            for f in fields(self)
            if f.name not in ("campaigns", "flows") and getattr(self, f.name) is not None
        }
        return replace(self, **counts)


@dataclass(frozen=True)
class SeedInfo:
    """Handy ids into the seeded data, for queries that must find something."""

    phone_number_id: str
    contact_id: int  # a contact with a waiting (not ended) session
    contact_key: str
    session_id: int  # that session
    handoff_session_id: int
    handoff_contact_id: int
    ended_session_id: int
    idle_contact_id: int  # a contact without any session
    idle_contact_key: str
    pending_contact_key: str  # a contact with pending inbound events
    queued_outbound_id: int  # a queued, due message (the head of its recipient's queue)
    queued_contact_key: str
    delivered_wamid: str  # an existing message that was delivered, not read
    delivered_outbound_id: int
    campaign_id: int  # the running campaign
    flow_id: str  # a flow with an active version
    counts: dict[str, int] = field(default_factory=dict)  # rows per table
    seconds: float = 0.0  # how long seeding took (rows, indexes, statistics)


@dataclass(frozen=True)
class _Plan:
    """The derived numbers both dialects' SQL use."""

    sizes: Sizes
    pnid: str
    now: datetime

    @property
    def base(self) -> datetime:
        return self.now - SPAN

    @property
    def pending_inbound(self) -> int:
        return max(10, self.sizes.inbound_events // 2000)

    @property
    def queued(self) -> int:
        return max(5, min(self.sizes.outbound_messages // 100, self.sizes.contacts))

    @property
    def active_sessions(self) -> int:
        return max(3, min(self.sizes.sessions // 20, self.sizes.contacts))

    @property
    def pending_timers(self) -> int:
        return max(2, min(self.sizes.timers // 20, self.active_sessions))

    @property
    def sent(self) -> int:  # outbound rows 1..sent were sent; the rest are queued
        return self.sizes.outbound_messages - self.queued

    @property
    def status_per_message(self) -> int:
        return max(1, min(3, round(self.sizes.status_events / max(1, self.sent))))

    @property
    def attempts(self) -> int:
        wanted = self.sizes.send_attempts
        return self.sent if wanted is None else min(wanted, self.sent)


class _Dialect:
    """The few expressions that differ between SQLite and PostgreSQL."""

    def __init__(self, name: str, plan: _Plan) -> None:
        self.name = name
        self.plan = plan

    @property
    def pg(self) -> bool:
        return self.name == "postgresql"

    def series(self, count: int) -> tuple[str, str]:
        """(WITH prefix, FROM clause) producing n = 1..count."""
        if self.pg:
            return "", f"generate_series(CAST(1 AS bigint), {int(count)}) AS seq(n)"
        prefix = f"WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < {int(count)}) "
        return prefix, "seq"

    def pad(self, expr: str, width: int) -> str:
        if self.pg:
            return f"lpad(CAST({expr} AS text), {width}, '0')"
        return f"printf('%0{width}d', {expr})"

    def ts(self, seconds: str, *, base: datetime | None = None) -> str:
        """`base` (default: the plan's) plus `seconds` (an integer SQL expression), as the column stores it."""
        base = base or self.plan.base
        if self.pg:
            return f"(TIMESTAMPTZ '{base.isoformat()}' + ({seconds}) * INTERVAL '1 second')"
        # datetime() of a Julian day number: ~0.1 µs, where strftime() with a '+N seconds' modifier took ~2 µs
        # (a seeded row has up to eight timestamps)
        julian = base.timestamp() / 86400 + 2440587.5
        return f"(datetime({julian!r} + ({seconds}) / 86400.0) || '.000000')"

    def json(self, expr: str) -> str:
        return f"CAST({expr} AS jsonb)" if self.pg else expr

    def boolean(self, expr: str) -> str:
        return f"({expr})" if self.pg else f"(CASE WHEN {expr} THEN 1 ELSE 0 END)"

    def true(self) -> str:
        return "true" if self.pg else "1"

    def false(self) -> str:
        return "false" if self.pg else "0"


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _wa_id(d: _Dialect, n: str) -> str:
    return f"'346' || {d.pad(n, 8)}"


def _contact_of(expr: str, contacts: int) -> str:
    """The contact (1..contacts) that the n-th row of a table belongs to: round robin."""
    return f"((({expr}) - 1) % {contacts} + 1)"


def _statements(d: _Dialect) -> list[str]:
    """The INSERT ... SELECT statements, in foreign-key order."""
    p = d.plan
    s = p.sizes
    pnid = _quote(p.pnid)
    span = int(SPAN.total_seconds())
    out: list[str] = []

    def add(table: str, columns: str, count: int, select: str) -> None:
        with_, from_ = d.series(count)
        out.append(f"{with_}INSERT INTO {table} ({columns}) SELECT {select} FROM {from_}")

    # contacts: n = id; wa_id 346 + n; every fifth also has a user_id (BSUID)
    add(
        "contacts",
        "id, phone_number_id, contact_key, wa_id, user_id, profile_name, last_inbound_at, opted_out, "
        "created_at, updated_at",
        s.contacts,
        f"n, {pnid}, {_wa_id(d, 'n')}, {_wa_id(d, 'n')}, "
        f"CASE WHEN n % 5 = 0 THEN 'ES.' || {d.pad('n', 20)} END, 'Contact ' || n, "
        f"{d.ts(f'(n * 7919) % {span}')}, {d.boolean('n % 100 = 0')}, "
        f"{d.ts(f'n * {span} / {s.contacts} / 2')}, {d.ts(f'(n * 7919) % {span}')}",
    )

    # inbound_events: i = id, in time order; 3 of 5 messages, 2 of 5 statuses; the newest few pending
    template = orjson.dumps(
        {
            "provider": "cloud",
            "phone_number_id": p.pnid,
            "message_id": "@WAMID@",
            "contact": {"wa_id": "@WAID@", "user_id": None, "profile_name": "Contact"},
            "timestamp": "2026-01-01T12:00:00Z",
            "type": "text",
            "text": "hola",
            "payload": None,
            "context_message_id": None,
            "referral": None,
            "content": {"body": "hola"},
            "errors": [],
        }
    ).decode()
    contact = _contact_of("n", s.contacts)
    is_message = "n % 5 < 3"
    wamid = f"CASE WHEN {is_message} THEN 'wamid.IN' || {d.pad('n', 10)} ELSE 'wamid.OUT' || {d.pad('n', 10)} END"
    pending_from = s.inbound_events - p.pending_inbound
    received = d.ts(f"n * {span - 600} / {s.inbound_events}")
    status_template = orjson.dumps(
        {
            "provider": "cloud",
            "phone_number_id": p.pnid,
            "message_id": "@WAMID@",
            "status": "delivered",
            "timestamp": "2026-01-01T12:00:00Z",
            "recipient_id": "@WAID@",
            "callback_data": None,
            "errors": [],
            "conversation": None,
            "pricing": None,
        }
    ).decode()
    # each kind with its own canonical payload: a pending one is parsed by the engine / the status processor
    payload = (
        f"replace(replace(CASE WHEN {is_message} THEN {_quote(template)} ELSE {_quote(status_template)} END, "
        f"'@WAMID@', {wamid}), '@WAID@', {_wa_id(d, contact)})"
    )
    add(
        "inbound_events",
        "id, dedup_key, kind, provider, phone_number_id, contact_key, provider_message_id, payload, received_at, "
        "state, attempts, processed_at",
        s.inbound_events,
        f"n, CASE WHEN {is_message} THEN 'msg:' || {wamid} ELSE 'st:' || {wamid} || ':delivered' END, "
        f"CASE WHEN {is_message} THEN 'message' ELSE 'status' END, 'cloud', {pnid}, {_wa_id(d, contact)}, {wamid}, "
        f"{d.json(payload)}, "
        f"{received}, CASE WHEN n > {pending_from} THEN 'pending' ELSE 'done' END, "
        f"CASE WHEN n > {pending_from} THEN 0 ELSE 1 END, CASE WHEN n > {pending_from} THEN NULL ELSE {received} END",
    )

    # sessions: s = id, contact round robin; the newest `active_sessions` are not ended (distinct contacts,
    # since they are consecutive and fewer than the contacts)
    active_from = s.sessions - p.active_sessions
    state = (
        f"CASE WHEN n <= {active_from} THEN 'ended' WHEN n % 20 < 16 THEN 'waiting' "
        "WHEN n % 20 < 19 THEN 'handoff' ELSE 'running' END"
    )
    started = d.ts(f"n * {span} / {s.sessions}")
    add(
        "sessions",
        "id, contact_id, flow_id, flow_version, state, current_node, vars, waiting_for, step_count, started_at, "
        "updated_at, ended_at, end_reason, expires_at",
        s.sessions,
        f"n, {_contact_of('n', s.contacts)}, 'flow' || (n % {s.flows}), '1', {state}, 'ask', "
        f"{d.json(_quote('{}'))}, CASE WHEN n > {active_from} AND n % 20 < 16 THEN 'reply' END, 3, {started}, "
        f"{started}, CASE WHEN n <= {active_from} THEN {started} END, CASE WHEN n <= {active_from} THEN 'done' END, "
        f"CASE WHEN n > {active_from} AND n % 20 < 19 THEN {d.ts('86400', base=p.now)} END",
    )

    # flow versions: one active version per flow
    add(
        "flow_versions",
        "id, flow_id, version, content_hash, definition, deployed_at, active",
        s.flows,
        f"n, 'flow' || (n - 1), 1, {d.pad('n', 64)}, {d.json(_quote('{}'))}, {d.ts('0')}, {d.true()}",
    )

    # campaigns: the last one running
    add(
        "campaigns",
        "id, name, phone_number_id, template, language, params, status, total, created_at, updated_at, finished_at",
        s.campaigns,
        f"n, 'campaign ' || n, {pnid}, 'promo', 'en_US', {d.json(_quote('[]'))}, "
        f"CASE WHEN n = {s.campaigns} THEN 'running' ELSE 'done' END, "
        f"{(s.outbound_messages // 4) // s.campaigns}, {d.ts(f'n * {span} / {s.campaigns + 1}')}, "
        f"{d.ts(f'n * {span} / {s.campaigns + 1}')}, "
        f"CASE WHEN n = {s.campaigns} THEN NULL ELSE {d.ts(f'n * {span} / {s.campaigns + 1} + 3600')} END",
    )

    # outbound_messages: j = id; 1..sent were sent (2 % failed, else read/delivered/sent), the rest queued and due.
    # A third belong to their contact's first session (when it has one), a quarter to a campaign.
    o_contact = _contact_of("n", s.contacts)
    status = (
        f"CASE WHEN n > {p.sent} THEN 'queued' WHEN n % 50 = 0 THEN 'failed' WHEN n % 10 < 6 THEN 'read' "
        "WHEN n % 10 < 9 THEN 'delivered' ELSE 'sent' END"
    )
    created = d.ts(f"n * {span - 600} / {s.outbound_messages}")
    sent_at = d.ts(f"n * {span - 600} / {s.outbound_messages} + 1")
    # queued rows of a campaign belong to the running one: a finished campaign has nothing left to send
    campaign = (
        f"CASE WHEN n % 4 = 1 THEN CASE WHEN n > {p.sent} THEN {s.campaigns} ELSE (n / 4) % {s.campaigns} + 1 END END"
    )
    session = f"CASE WHEN n % 3 = 0 AND {o_contact} <= {s.sessions} THEN {o_contact} END"
    due = d.ts("-60", base=p.now)
    add(
        "outbound_messages",
        "id, phone_number_id, contact_key, to_number, type, content, status, provider_message_id, "
        "business_initiated, campaign_id, session_id, node_id, due_at, attempts, error_code, error_class, "
        "error_text, created_at, updated_at, accepted_at, sent_at, delivered_at, read_at, failed_at, queue_head",
        s.outbound_messages,
        f"n, {pnid}, {_wa_id(d, o_contact)}, {_wa_id(d, o_contact)}, 'text', "
        f"{d.json(_quote(orjson.dumps({'body': 'Thanks for your message'}).decode()))}, {status}, "
        f"CASE WHEN n > {p.sent} THEN NULL ELSE 'wamid.OUT' || {d.pad('n', 10)} END, "
        f"{d.boolean('n % 4 = 1')}, {campaign}, {session}, CASE WHEN n % 3 = 0 THEN 'reply' END, "
        f"CASE WHEN n > {p.sent} THEN {due} ELSE {created} END, CASE WHEN n > {p.sent} THEN 0 ELSE 1 END, "
        f"CASE WHEN n <= {p.sent} AND n % 50 = 0 THEN 131026 END, "
        f"CASE WHEN n <= {p.sent} AND n % 50 = 0 THEN 'permanent' END, "
        f"CASE WHEN n <= {p.sent} AND n % 50 = 0 THEN 'Message undeliverable' END, "
        f"{created}, {created}, CASE WHEN n <= {p.sent} THEN {sent_at} END, "
        f"CASE WHEN n <= {p.sent} AND n % 50 <> 0 THEN {sent_at} END, "
        f"CASE WHEN n <= {p.sent} AND n % 50 <> 0 AND n % 10 < 9 THEN {sent_at} END, "
        f"CASE WHEN n <= {p.sent} AND n % 50 <> 0 AND n % 10 < 6 THEN {sent_at} END, "
        f"CASE WHEN n <= {p.sent} AND n % 50 = 0 THEN {sent_at} END, "
        # each queued row is its recipient's only one, so its head (`_HEADS_TRIGGER` is off while seeding)
        f"{d.boolean(f'n > {p.sent}')}",
    )

    # send_attempts: one accepted try per sent message
    add(
        "send_attempts",
        "id, outbound_id, attempt, started_at, finished_at, outcome, http_status",
        p.attempts,
        f"n, n, 1, {created}, {created}, 'accepted', 200",
    )

    # status_events: k = 1..m per sent message j (n = (j - 1) * m + k); sent, delivered, read in turn
    m = p.status_per_message
    j, k = f"((n - 1) / {m} + 1)", f"((n - 1) % {m} + 1)"
    ev_status = (
        f"CASE WHEN {k} = 1 THEN 'sent' WHEN {j} % 50 = 0 THEN 'failed' WHEN {k} = 2 THEN 'delivered' ELSE 'read' END"
    )
    add(
        "status_events",
        "id, outbound_id, provider_message_id, status, occurred_at, recorded_at, callback_data, applied, advanced",
        p.sent * m,
        f"n, {j}, 'wamid.OUT' || {d.pad(j, 10)}, {ev_status}, {d.ts(f'{j} * {span - 600} / {s.outbound_messages} + {k}')}, "  # noqa: E501
        f"{d.ts(f'{j} * {span - 600} / {s.outbound_messages} + {k}')}, 'wf:' || {j}, {d.true()}, {d.true()}",
    )
    held = 10
    add(
        "status_events",
        "id, outbound_id, provider_message_id, status, occurred_at, recorded_at, applied, advanced",
        held,
        f"{p.sent * m} + n, NULL, 'wamid.HELD' || n, 'delivered', {d.ts('-30', base=p.now)}, "
        f"{d.ts('-30', base=p.now)}, {d.false()}, {d.false()}",
    )

    # timers: t = id; the newest `pending_timers` are pending on the active sessions (the first fifth already
    # due), the others fired (3 in 4) or cancelled, on the sessions round robin
    pending_from = s.timers - p.pending_timers
    t_session = f"CASE WHEN n > {pending_from} THEN {active_from} + (n - {pending_from}) ELSE {_contact_of('n', s.sessions)} END"  # noqa: E501
    t_state = f"CASE WHEN n > {pending_from} THEN 'pending' WHEN n % 4 = 0 THEN 'cancelled' ELSE 'fired' END"
    fire_at = (
        f"CASE WHEN n > {pending_from} THEN {d.ts(f'(n - {pending_from}) * 10 - {p.pending_timers * 2}', base=p.now)} "
        f"ELSE {d.ts(f'n * {span} / {s.timers}')} END"
    )
    add(
        "timers",
        "id, session_id, phone_number_id, contact_key, kind, fire_at, payload, state, created_at, fired_at",
        s.timers,
        f"n, {t_session}, {pnid}, {_wa_id(d, _contact_of(t_session, s.contacts))}, 'timeout', {fire_at}, "
        f"{d.json(_quote('{}'))}, {t_state}, {d.ts(f'n * {span} / {s.timers}')}, "
        f"CASE WHEN n <= {pending_from} AND n % 4 <> 0 THEN {fire_at} END",
    )
    return out


def _check_columns(statements: list[str]) -> None:
    """Fail clearly when a table gained a NOT NULL column without a server default that seeding does not fill."""
    seeded: dict[str, set[str]] = {}
    for sql in statements:
        head = sql[sql.index("INSERT INTO ") + len("INSERT INTO ") :]
        table, _, rest = head.partition(" (")
        seeded.setdefault(table, set()).update(c.strip() for c in rest.split(")", 1)[0].split(","))
    for table, columns in seeded.items():
        for column in metadata.tables[table].columns:
            if not column.nullable and column.server_default is None and column.name not in columns:
                raise RuntimeError(f"seeding does not fill {table}.{column.name} (NOT NULL, no server default)")


# Marks each new queued row the head of its recipient's queue when no earlier one is queued: one index probe
# per row in production, but a table scan per queued row while seeding (the indexes are dropped). The seeded
# rows carry their marks; the trigger is off meanwhile.
_HEADS_TRIGGER = "trg_outbound_heads_insert"

_SEQUENCED = ("contacts", "inbound_events", "outbound_messages", "send_attempts", "status_events", "sessions",
              "timers", "campaigns", "flow_versions")


async def seed_store(
    store: Store, sizes: Sizes, *, phone_number_id: str = DEFAULT_PHONE_NUMBER_ID, rng_seed: int = 0
) -> SeedInfo:
    """Fill the upgraded, empty `store` with rows of `sizes` (see the module docstring); ids into them.

    The data is deterministic (`rng_seed` is accepted for callers that want to vary it later; the shapes
    do not depend on it yet). Refuses a store that already has contacts.
    """
    del rng_seed
    started = time.perf_counter()
    plan = _Plan(sizes, phone_number_id, utcnow().replace(microsecond=0))
    dialect = _Dialect(store.dialect, plan)
    statements = _statements(dialect)
    _check_columns(statements)
    async with store.begin() as conn:
        if (await conn.execute(text("SELECT count(*) FROM contacts"))).scalar_one():
            raise RuntimeError("seed_store needs an empty store")
        if dialect.pg:
            await _seed_postgres(conn, statements)
            for table in _SEQUENCED:
                await conn.exec_driver_sql(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                    f"(SELECT coalesce(max(id), 0) + 1 FROM {table}), false)"
                )
        else:
            await sqlite_call(conn, _run_all(statements))
        counts = {table: await _count(conn, table) for table in _SEQUENCED}
    if dialect.pg:
        # production has autovacuum: statistics and the visibility map (index-only scans) are current
        async with store.engine.connect() as conn:
            auto = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await auto.exec_driver_sql("VACUUM ANALYZE")
    return _info(plan, counts, time.perf_counter() - started)


def _run_all(statements: list[str]) -> Callable[[sqlite3.Connection], None]:
    """Seeding on SQLite's thread: secondary indexes dropped, rows written, indexes built again.

    Building an index from the finished table (one sort) is several times faster than updating it row by
    row, most of all for the indexes whose order is not the insertion order ((phone_number_id, contact_key,
    id), dedup keys). The index definitions are read from the database, so indexes added by later revisions
    are rebuilt too, and rebuilding a unique index checks the seeded rows against it.
    """

    def run(db: sqlite3.Connection) -> None:
        # a big page cache while the indexes are built; restored after, so the pooled connection is as before
        previous = db.execute("PRAGMA cache_size").fetchone()[0]
        db.execute("PRAGMA cache_size = -262144")
        try:
            marks = ", ".join("?" * len(_SEQUENCED))
            indexes = db.execute(
                "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
                f"AND tbl_name IN ({marks})",
                _SEQUENCED,
            ).fetchall()
            trigger = db.execute(
                "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = ?", (_HEADS_TRIGGER,)
            ).fetchone()
            for name, _sql in indexes:
                db.execute(f'DROP INDEX "{name}"')
            if trigger is not None:
                db.execute(f'DROP TRIGGER "{_HEADS_TRIGGER}"')
            for sql in statements:
                db.execute(sql)
            if trigger is not None:
                db.execute(trigger[0])
            for _name, sql in indexes:
                db.execute(sql)
        finally:
            db.execute(f"PRAGMA cache_size = {int(previous)}")

    return run


async def _seed_postgres(conn: AsyncConnection, statements: list[str]) -> None:
    """As `_run_all` on PostgreSQL: foreign keys and secondary indexes dropped while the rows are written and
    created again afterwards (one validating join per key, one sort per index), all inside the transaction."""
    await conn.exec_driver_sql("SET LOCAL maintenance_work_mem = '256MB'")
    await conn.exec_driver_sql("SET LOCAL synchronous_commit = off")  # seeding only: a crash just means seed again
    tables = ", ".join(_quote(t) for t in _SEQUENCED)
    foreign: list[tuple[str, str, str]] = [
        (str(r[0]), str(r[1]), str(r[2]))
        for r in await conn.execute(
            text(
            "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint "
            f"WHERE contype = 'f' AND conrelid::regclass::text IN ({tables})"
            )
        )
    ]
    indexes: list[tuple[str, str]] = [
        (str(r[0]), str(r[1]))
        for r in await conn.execute(
            text(
            "SELECT i.indexname, i.indexdef FROM pg_indexes AS i WHERE i.schemaname = current_schema() "
            f"AND i.tablename IN ({tables}) AND NOT EXISTS (SELECT 1 FROM pg_constraint AS c "
            "WHERE c.conname = i.indexname AND c.connamespace = current_schema()::regnamespace)"
            )
        )
    ]
    for table, name, _definition in foreign:
        await conn.exec_driver_sql(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
    for name, _definition in indexes:
        await conn.exec_driver_sql(f'DROP INDEX "{name}"')
    heads = await conn.scalar(text(f"SELECT count(*) FROM pg_trigger WHERE tgname = '{_HEADS_TRIGGER}'"))
    if heads:
        await conn.exec_driver_sql(f"ALTER TABLE outbound_messages DISABLE TRIGGER {_HEADS_TRIGGER}")
    for sql in statements:
        await conn.exec_driver_sql(sql)
    if heads:
        await conn.exec_driver_sql(f"ALTER TABLE outbound_messages ENABLE TRIGGER {_HEADS_TRIGGER}")
    for _name, definition in indexes:
        await conn.exec_driver_sql(definition)
    for table, name, definition in foreign:
        await conn.exec_driver_sql(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')


async def _count(conn: AsyncConnection, table: str) -> int:
    # max(id) is an index lookup; the ids are 1..n
    value = (await conn.execute(text(f"SELECT coalesce(max(id), 0) FROM {table}"))).scalar_one()
    return int(value)


def _info(plan: _Plan, counts: dict[str, int], seconds: float) -> SeedInfo:
    s = plan.sizes
    active_from = s.sessions - plan.active_sessions

    def contact_of(n: int) -> int:
        return (n - 1) % s.contacts + 1

    def key(contact_id: int) -> str:
        return f"346{contact_id:08d}"

    # a waiting session (n % 20 < 16) and a handoff one (16 <= n % 20 < 19) among the active ones
    waiting = next(n for n in range(s.sessions, active_from, -1) if n % 20 < 16)
    handoff = next((n for n in range(s.sessions, active_from, -1) if 16 <= n % 20 < 19), waiting)
    # a contact beyond every session's contact has no session (when there are more contacts than sessions)
    idle = s.contacts if s.contacts > s.sessions else contact_of(1)
    delivered = next(j for j in range(plan.sent, 0, -1) if j % 50 != 0 and 6 <= j % 10 < 9)
    queued = plan.sent + 1
    return SeedInfo(
        phone_number_id=plan.pnid,
        contact_id=contact_of(waiting),
        contact_key=key(contact_of(waiting)),
        session_id=waiting,
        handoff_session_id=handoff,
        handoff_contact_id=contact_of(handoff),
        ended_session_id=1,
        idle_contact_id=idle,
        idle_contact_key=key(idle),
        pending_contact_key=key(contact_of(s.inbound_events)),
        queued_outbound_id=queued,
        queued_contact_key=key(contact_of(queued)),
        delivered_wamid=f"wamid.OUT{delivered:010d}",
        delivered_outbound_id=delivered,
        campaign_id=s.campaigns,
        flow_id="flow0",
        counts=counts,
        seconds=seconds,
    )


__all__ = ["DEFAULT_PHONE_NUMBER_ID", "SeedInfo", "Sizes", "seed_store"]
