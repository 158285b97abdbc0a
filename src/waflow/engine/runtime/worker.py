"""`EngineWorker`: takes the inbox's message events (and the engine's own events) and runs the flows.

Order and exactly-once:

- Events of one contact are applied strictly in inbox id order; the contact row is the lock
  (PostgreSQL: `FOR UPDATE SKIP LOCKED` — a contact another worker holds is skipped this round, so
  several workers share the load without ever interleaving one contact). SQLite has one writer.
- Applying an event, the session's new state, every outbound row and timer, and the event's `done`
  are one transaction; a done event is never selected again, and a redelivered webhook was already
  dropped by the inbox's dedup key.
- On SQLite one transaction carries a whole batch of contacts (fast group commit); if anything in
  it fails unexpectedly, the batch is rolled back and replayed one event per transaction, so the
  failing event alone is marked failed (retried later, in order; `dead` after `max_event_attempts`)
  and the contact's later events wait behind it.

HTTP nodes: the session is committed as `running` at the node (waiting for `http`), the call is
made outside any transaction, and the answer is applied in a new transaction. A crash in between
leaves the session `running`; after `stale_after` it is recovered by making the call again — so an
http node's request is delivered at least once, not exactly once (use idempotency keys upstream).
The node's `timeout` bounds the whole call: waiting for a free call slot, resolving, connecting, the headers
and the body (`http_guard.call`).

Bounded work per contact:

- Fair rounds: while some contact has more than `turn_share` events waiting, rounds are chosen from a window of
  the oldest open events (`batch.pick_fair`): every contact in it gets `turn_share` of its events before any
  gets more (a contact alone gets a whole round), so everyone else's events are in the same rounds as that
  contact's backlog instead of behind it. What a round leaves stays pending, in order, for later rounds
  (`waflow_engine_deferred_total{reason="turn_share"}`, logged at most every 10 s per contact). A round also
  takes no further event after `round_seconds` (`reason="round_time"`).
- Backlog cap: a contact held to its share is checked (at most once a second) for more than
  `max_pending_per_contact` messages waiting; the newest beyond are set aside unprocessed — state `dead`, error
  `over_backlog_cap: ...` — in the round's transaction (`waflow_engine_shed_total{reason="backlog_cap"}`, a
  warning in the log). Engine events (timers, delivery failures, starts, hand-backs) are never set aside.
- Every event's templates run under `config.expression_limits` (`sandbox.expression_turn`): a work budget and a
  deadline per template, and a deadline for the event's templates together.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

import httpx
from sqlalchemy import Select, bindparam, literal_column, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from waflow.canonical import InboundMessage
from waflow.engine.flows.expressions import ExpressionEngine, default_engine
from waflow.engine.flows.sandbox import expression_turn
from waflow.engine.runtime import events, http_guard
from waflow.engine.runtime.batch import (
    AlreadyApplied,
    Batch,
    FairPick,
    load_batch,
    load_batch_ids,
    load_window,
    mark_done,
    pick_fair,
    shed_backlog,
    write_batch,
)
from waflow.engine.runtime.config import EngineConfig
from waflow.engine.runtime.contacts import ContactBusy, lock_contact, lock_contact_id
from waflow.engine.runtime.deploy import FlowCatalog
from waflow.engine.runtime.dispatch import BLOCKED, Dispatcher
from waflow.engine.runtime.loop import BackgroundLoop
from waflow.engine.runtime.metrics import DEFERRED, SHED
from waflow.engine.runtime.session import Machine
from waflow.engine.runtime.state import SessionBook, load_active
from waflow.engine.runtime.turn import HttpJob, Turn, flush_outbox
from waflow.store import Store
from waflow.store.contacts import ContactRecord
from waflow.store.dialect import is_postgres
from waflow.store.inbox import InboundEventRecord, InboxRepository
from waflow.store.tables import _FAILED_UNSEEN as FAILED_UNSEEN
from waflow.store.tables import ENGINE_OPEN_EVENTS, inbound_events, outbound_messages, sessions
from waflow.store.types import utcnow

log = logging.getLogger(__name__)
inbox = InboxRepository()
_EVENT_COLUMNS = [inbound_events.c[name] for name in InboundEventRecord.__slots__]
_ENGINE_OPEN = text(ENGINE_OPEN_EVENTS)

Clock = Callable[[], datetime]
GroupKey = tuple[str, str]


_FAILED_COLUMNS = ("id", "session_id", "node_id", "phone_number_id", "contact_key", "error_code", "error_text")


def _failed_unseen(conn: AsyncConnection, columns: tuple[str, ...], limit: int) -> Select[Any]:
    """Failed outbound messages of sessions the engine has not taken note of, oldest first, read from
    `ix_outbound_messages_failed_unseen` (the filter is its WHERE, as text).

    SQLite, which has no statistics here, took `session_id IS NOT NULL` for a range of
    `ix_outbound_messages_session_id` and walked every outbound row that has a session (all of a bot's
    messages) every maintenance round; `INDEXED BY` names the partial index (and would make the statement
    fail, not scan, if a change made it unusable). PostgreSQL chooses the partial index from its statistics.
    """
    source = _FAILED_UNSEEN_SQLITE if conn.dialect.name == "sqlite" else outbound_messages.name
    selected: list[Any] = [literal_column(name) for name in columns]
    return (
        select(*selected)
        .select_from(text(source))
        .where(text(FAILED_UNSEEN))
        .order_by(literal_column("id"))
        .limit(limit)
    )


_FAILED_UNSEEN_SQLITE = f"{outbound_messages.name} INDEXED BY ix_outbound_messages_failed_unseen"


# The round's statements, built once (per batch size): building a select() and its cache key on every call was
# a good part of the engine's CPU per event; a built statement memoizes its key.
_ANY_OPEN = select(inbound_events.c.id).where(_ENGINE_OPEN).limit(1)
_PROBE_EVERY = 1.0  # seconds between two backlog-cap checks of one contact
_MAX_WINDOW = 4_096  # open events a fair round looks at, at most (light rows: id, contact, kind)
_REPORT_EVERY = 10.0  # seconds between two log lines about one contact held to its share
_REMEMBERED = 4_096  # contacts remembered for those two


def over_cap_reason(cap: int) -> str:
    return (
        f"over_backlog_cap: more than {cap} messages of this contact were waiting; the newest beyond them were set "
        "aside unprocessed"
    )


@functools.lru_cache(maxsize=8)
def _contact_events_statement(limit: int) -> Select[Any]:
    return (
        select(*_EVENT_COLUMNS)
        .where(
            inbound_events.c.phone_number_id == bindparam("pnid", type_=inbound_events.c.phone_number_id.type),
            inbound_events.c.contact_key == bindparam("key", type_=inbound_events.c.contact_key.type),
            inbound_events.c.id <= bindparam("up_to", type_=inbound_events.c.id.type),
            _ENGINE_OPEN,
        )
        .order_by(inbound_events.c.id)
        .limit(limit)
    )


_NO_BOUND = 2**63 - 1  # `_contact_events` without an upper id bound (the largest BIGINT)


def _event(row: Any) -> InboundEventRecord:
    return InboundEventRecord(**row._mapping)


class EngineWorker(BackgroundLoop):
    """Runs flows for the inbox's events. `async with EngineWorker(store) as worker:` runs it in the background;
    `await worker.run_once()` does one round (tests, benchmarks)."""

    task_name = "waflow-engine-worker"

    def __init__(
        self,
        store: Store,
        config: EngineConfig | None = None,
        *,
        clock: Clock = utcnow,
        expressions: ExpressionEngine | None = None,
        http_client: httpx.AsyncClient | None = None,
        catalog: FlowCatalog | None = None,
    ) -> None:
        super().__init__()
        self.store = store
        self.config = config or EngineConfig()
        self.clock = clock
        self.catalog = catalog or FlowCatalog()
        self.machine = Machine(self.config, self.catalog, expressions or default_engine)
        self.dispatcher = Dispatcher(self.machine)
        self._http_client = http_client
        self._own_client = http_client is None
        self._http_tasks: set[asyncio.Task[None]] = set()
        self._http_slots = asyncio.Semaphore(self.config.http_concurrency)
        self._busy: set[GroupKey] = set()  # contacts with an HTTP call of this worker in flight
        self._last_maintenance = 0.0
        self._wake = asyncio.Event()
        self._idle = False  # the last round found nothing: look before taking the write lock
        self._contended = False  # the last round held a contact to its share: choose the next one fairly too
        self._window = self._base_window
        self._limits = self.config.expression_limits
        self._probed: OrderedDict[GroupKey, float] = OrderedDict()  # contact → when its backlog was last checked
        self._reported: OrderedDict[GroupKey, float] = OrderedDict()  # contact → when "held to its share" was logged
        self.processed = 0
        self.shed = 0  # messages set aside over the backlog cap (this worker)
        # called after a round that applied events (their replies are committed: wake the outbox dispatcher)
        self.on_applied: Callable[[], None] | None = None

    # --- lifecycle ---

    def _interrupt(self) -> None:
        self._wake.set()

    async def stop(self) -> None:
        await super().stop()
        for task in list(self._http_tasks):
            task.cancel()
        if self._http_tasks:
            await asyncio.gather(*self._http_tasks, return_exceptions=True)
        if self._own_client and self._http_client is not None:
            await self._http_client.aclose()
            self._http_client = None

    def notify(self) -> None:
        """New events were committed (a webhook's message, a timer): run a round now, not at the next poll."""
        self._idle = False
        self._wake.set()

    async def run(self) -> None:
        while not self._stopping.is_set():
            self._wake.clear()
            try:
                count = await self.run_once()
            except Exception:  # a database hiccup: log, back off, go on
                log.exception("engine round failed")
                count = 0
            if count == 0:
                # the poll is the fallback for events committed by other processes (or without a notify)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.config.poll_interval)

    async def run_until_idle(self, timeout: float = 10.0) -> int:  # noqa: ASYNC109
        """Rounds until nothing is left to do (no event applied, no HTTP call in flight); returns events applied."""
        total = 0
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            count = await self.run_once()
            total += count
            if count == 0:
                if not self._http_tasks:
                    return total
                await asyncio.wait(list(self._http_tasks), timeout=max(0.0, deadline - loop.time()))
        return total

    # --- one round ---

    async def run_once(self) -> int:
        """Apply what is queued (one batch); returns how many events were applied."""
        await self._maintenance()
        if self.store.dialect == "sqlite":
            count = await self._round_single()
        else:
            count = await self._round_concurrent()
        self._idle = count == 0
        if count and self.on_applied is not None:
            self.on_applied()
        return count

    async def _anything_open(self) -> bool:
        """Whether any engine event is open, read without the write lock.

        An idle worker polls; on SQLite a write transaction that finds nothing would still queue for the
        single write lock behind the inbox, the dispatcher and the status processor, and hold it while it
        looks. After a round that applied events (or a `notify`) the check is skipped.
        """
        async with self.store.read() as conn:
            return (await conn.execute(_ANY_OPEN)).first() is not None

    # --- fair rounds ---

    @property
    def _base_window(self) -> int:
        """How many of the oldest open events a fair round chooses from: past one capped backlog and a round."""
        size = self.config.batch_size
        return max(4 * size, min(self.config.max_pending_per_contact, _MAX_WINDOW) + size)

    def _pick(self, window: list[Any]) -> FairPick:
        size = self.config.batch_size
        pick = pick_fair(window, limit=size, share=self.config.turn_share, skip=self._busy)
        self._contended = bool(pick.capped)
        self._report_capped(pick.capped)
        if pick.capped and len(window) >= self._window and len(pick.capped) == len({row.key for row in window}):
            # a full window of backlogs only (several contacts'): look further next time, for anyone behind them
            self._window = min(2 * self._window, max(_MAX_WINDOW, self._base_window))
        elif not pick.capped:
            self._window = self._base_window
        return pick

    def _over_share(self, batch: Batch) -> bool:
        counts = Counter((e.phone_number_id or "", e.contact_key or "") for e in batch.events)
        share = self.config.turn_share
        return any(n > share and key not in self._busy for key, n in counts.items())

    async def _round_batch(self, conn: AsyncConnection, now: datetime) -> Batch:
        """SQLite: the oldest `batch_size` events (one statement) — or, when a contact has more than its share
        waiting, a fair choice from the window (two statements, and the backlog cap's checks)."""
        if not self._contended:
            batch = await load_batch(conn, self.config.batch_size)
            if not self._over_share(batch):
                return batch
        pick = self._pick(await load_window(conn, self._window))
        for key in self._due_probes(pick.capped):
            await self._shed(conn, key, now)
        return await load_batch_ids(conn, pick.ids)

    def _due_probes(self, keys: Iterable[GroupKey]) -> list[GroupKey]:
        """The contacts whose backlog is due for a cap check (each at most every `_PROBE_EVERY` s)."""
        now = time.monotonic()
        due = []
        for key in keys:
            last = self._probed.get(key)
            if last is None or now - last >= _PROBE_EVERY:
                due.append(key)
                self._probed[key] = now
                self._probed.move_to_end(key)
        while len(self._probed) > _REMEMBERED:
            self._probed.popitem(last=False)
        return due

    async def _shed(self, conn: AsyncConnection, key: GroupKey, now: datetime) -> int:
        cap = self.config.max_pending_per_contact
        count = await shed_backlog(conn, key, cap, over_cap_reason(cap), now, frozenset(self.config.commands))
        if count:
            SHED.labels("backlog_cap").inc(count)
            self.shed += count
            log.warning(
                "contact %s had more than %d messages waiting: %d newer ones set aside unprocessed "
                "(state dead, error over_backlog_cap)", key[1], cap, count,
            )  # fmt: skip
        return count

    def _report_capped(self, keys: list[GroupKey]) -> None:
        if not keys:
            return
        DEFERRED.labels("turn_share").inc(len(keys))
        now = time.monotonic()
        for key in keys:
            last = self._reported.get(key)
            if last is None or now - last >= _REPORT_EVERY:
                self._reported[key] = now
                self._reported.move_to_end(key)
                log.info(
                    "contact %s has a backlog of events: it takes turns with other contacts' (%d events a turn); "
                    "the rest wait for later rounds", key[1], self.config.turn_share,
                )  # fmt: skip
        while len(self._reported) > _REMEMBERED:
            self._reported.popitem(last=False)

    @staticmethod
    def _group(rows: list[InboundEventRecord]) -> dict[GroupKey, list[InboundEventRecord]]:
        groups: dict[GroupKey, list[InboundEventRecord]] = {}
        for row in rows:
            groups.setdefault((row.phone_number_id or "", row.contact_key or ""), []).append(row)
        return groups

    async def _round_single(self) -> int:
        """SQLite: one transaction for the batch; on an unexpected error, replay event by event."""
        jobs: list[HttpJob] = []
        groups: dict[GroupKey, list[InboundEventRecord]] = {}
        if self._idle and not await self._anything_open():
            return 0
        try:
            async with self.store.begin() as conn:
                await self.catalog.refresh(conn)  # in the round's transaction: no deploy slips in between
                now = self.clock()
                batch = await self._round_batch(conn, now)  # events + contacts + sessions: 1 statement (usually)
                groups = self._group(batch.events)
                if not groups:
                    return 0
                book = SessionBook(batch.sessions)
                done: list[int] = []
                outgoing: list[dict[str, Any]] = []
                deadline = time.perf_counter() + self.config.round_seconds
                keys = [key for key in groups if key not in self._busy]
                for i, key in enumerate(keys):
                    rows = groups[key]
                    if done and time.perf_counter() > deadline:
                        DEFERRED.labels("round_time").inc(len(keys) - i)
                        break  # the round's time is up: the other contacts' events wait for the next one
                    done += await self._apply_group(conn, key, rows, now, jobs, outgoing, skip_locked=False,
                                                    book=book, contact=batch.contacts.get(key),
                                                    deadline=deadline)  # fmt: skip
                await write_batch(conn, book, outgoing, done, now)  # SQLite: one hand-off to its thread
        except Exception:
            log.exception("engine batch failed; replaying it one event at a time")
            return await self._replay(list(groups))
        self._spawn(jobs)
        self.processed += len(done)
        return len(done)

    async def _round_concurrent(self) -> int:
        """PostgreSQL: contacts in parallel, each in its own transaction under its row lock."""
        async with self.store.read() as conn:
            await self.catalog.refresh(conn)
            pick = self._pick(await load_window(conn, self._window))  # light rows: ids, contacts, kinds
        if not pick.ids:
            return 0
        # A round applies the events it chose (the oldest, at most `turn_share` per contact), not every open event
        # of their contacts: each contact reads its events after taking its lock (what another worker applied
        # meanwhile is gone), at most its share and only up to the newest chosen event — else a round's length
        # (every event's step latency) grew with the backlog. It is a prefix of each contact's queue: the order
        # holds.
        up_to = pick.up_to
        probes = set(self._due_probes(pick.capped))
        slots = asyncio.Semaphore(self.config.concurrency)

        async def one(key: GroupKey, limit: int) -> int:
            async with slots:
                return await self._contact_round(key, up_to, limit, shed=key in probes)

        counts = await asyncio.gather(*(one(key, n) for key, n in pick.per_contact.items()))
        return sum(counts)

    async def _contact_round(self, key: GroupKey, up_to: int, limit: int | None = None, *, shed: bool = False) -> int:
        jobs: list[HttpJob] = []
        try:
            async with self.store.begin() as conn:
                now = self.clock()
                outgoing: list[dict[str, Any]] = []
                book = SessionBook()
                done = await self._apply_group(conn, key, None, now, jobs, outgoing, skip_locked=True, book=book,
                                               up_to=up_to, limit=limit, shed=shed)  # fmt: skip
                await write_batch(conn, book, outgoing, done, now)
        except Exception:
            log.exception("engine events of contact %s failed; replaying one at a time", key[1])
            return await self._replay([key])
        self._spawn(jobs)
        self.processed += len(done)
        return len(done)

    async def _contact_events(
        self, conn: AsyncConnection, key: GroupKey, up_to: int = _NO_BOUND, limit: int | None = None
    ) -> list[InboundEventRecord]:
        """The contact's oldest open events (ids up to `up_to`, at most `limit`), in id order."""
        stmt = _contact_events_statement(min(limit or self.config.batch_size, self.config.batch_size))
        return [_event(row) for row in await conn.execute(stmt, {"pnid": key[0], "key": key[1], "up_to": up_to})]

    async def _apply_group(
        self,
        conn: AsyncConnection,
        key: GroupKey,
        rows: list[InboundEventRecord] | None,
        now: datetime,
        jobs: list[HttpJob],
        outgoing: list[dict[str, Any]],
        *,
        skip_locked: bool,
        book: SessionBook,
        contact: ContactRecord | None = None,
        up_to: int = _NO_BOUND,
        limit: int | None = None,
        shed: bool = False,
        deadline: float | None = None,
    ) -> list[int]:
        """Apply one contact's events in order until one is blocked; returns the ids applied.

        `rows` None: read the contact's open events after taking its lock (PostgreSQL: what another worker
        applied before we got the lock is done by then, so it is not read again), ids up to `up_to` (the round's
        newest chosen event), at most `limit`; with `shed`, first set aside its messages over the backlog cap.
        `contact`: the contact as the batch's transaction already read it (SQLite, where the transaction is the
        lock). `deadline` (perf_counter): take no further event after it (one at least).
        """
        if contact is None:
            try:
                contact = await lock_contact(conn, key[0], key[1], skip_locked=skip_locked, message=None)
            except ContactBusy:
                return []
        if shed:
            await self._shed(conn, key, now)
        if rows is None:
            rows = await self._contact_events(conn, key, up_to, limit)
        if not rows:
            return []
        if contact is None and rows[0].kind == "message":
            first = InboundMessage.model_validate(rows[0].payload)
            contact = await lock_contact(conn, key[0], key[1], skip_locked=False, message=first)
        if contact is None:  # an engine event for a contact that does not exist: nothing to do
            return [row.id for row in rows]
        done: list[int] = []
        for row in rows:
            if done and deadline is not None and time.perf_counter() > deadline:
                DEFERRED.labels("round_time").inc()
                break  # the round's time is up: the rest of this contact's events wait, in order
            turn = self._turn(conn, now, contact, outgoing, book)
            with expression_turn(self._limits):
                status = await self.dispatcher.apply(turn, row)
            if status == BLOCKED:
                jobs.extend(turn.http_jobs)
                break
            jobs.extend(turn.http_jobs)
            done.append(row.id)
            if turn.contact_changed:
                contact = await lock_contact_id(conn, contact.id) or contact
            if turn.http_jobs:
                break  # the session now waits for its HTTP call: later events wait behind it
        return done

    def _turn(
        self,
        conn: AsyncConnection,
        now: datetime,
        contact: ContactRecord,
        outgoing: list[dict[str, Any]],
        book: SessionBook | None = None,
    ) -> Turn:
        return Turn(conn, now, contact, self.config, self.catalog, self.machine.expressions, outgoing=outgoing,
                    book=book)  # fmt: skip

    async def _replay(self, keys: list[GroupKey]) -> int:
        """Event by event, each in its own transaction; the first failing event of a contact is marked failed."""
        applied = 0
        for key in keys:
            while True:
                jobs: list[HttpJob] = []
                failed: InboundEventRecord | None = None
                try:
                    async with self.store.begin() as conn:
                        now = self.clock()
                        await lock_contact(conn, key[0], key[1], skip_locked=False, message=None)
                        rows = (await self._contact_events(conn, key))[:1]
                        if not rows:
                            break
                        failed = rows[0]
                        outgoing: list[dict[str, Any]] = []
                        book = SessionBook()
                        done = await self._apply_group(conn, key, rows, now, jobs, outgoing, skip_locked=False,
                                                       book=book)  # fmt: skip
                        await write_batch(conn, book, outgoing, done, now)
                except Exception as exc:
                    log.exception("engine event %s failed", failed.id if failed else "?")
                    if failed is not None:
                        async with self.store.begin() as conn:
                            await inbox.mark_failed(conn, failed.id, f"{type(exc).__name__}: {exc}"[:2000],
                                                    max_attempts=self.config.max_event_attempts)  # fmt: skip
                    break
                self._spawn(jobs)
                applied += len(done)
                if not done:
                    break
        self.processed += applied
        return applied

    # --- HTTP calls of http nodes ---

    def _client(self) -> httpx.AsyncClient:
        if self._http_client is None:
            self._http_client = httpx.AsyncClient()
        return self._http_client

    def _spawn(self, jobs: list[HttpJob]) -> None:
        for job in jobs:
            self._busy.add((job.phone_number_id, job.contact_key))
            task = asyncio.create_task(self._http(job))
            self._http_tasks.add(task)
            task.add_done_callback(self._http_tasks.discard)

    async def _http(self, job: HttpJob) -> None:
        key = (job.phone_number_id, job.contact_key)
        jobs: list[HttpJob] = []
        try:
            response = await http_guard.call(
                self._client(),
                job.request,
                allow_hosts=self.config.http_allow_hosts,
                max_bytes=self.config.http_max_response_bytes,
                slots=self._http_slots,  # waiting for a slot is part of the call's time
            )
            async with self.store.begin() as conn:
                contact = await lock_contact_id(conn, job.contact_id)
                if contact is not None:
                    turn = self._turn(conn, self.clock(), contact, [])
                    with expression_turn(self._limits):
                        await self.dispatcher.on_http_result(turn, job, response)
                    await flush_outbox(conn, turn.outgoing)
                    jobs = turn.http_jobs
        except Exception:
            log.exception("http node %s of session %s failed; the session will be recovered", job.node_id,
                          job.session_id)  # fmt: skip
        finally:
            self._busy.discard(key)
        self._spawn(jobs)

    # --- maintenance: delivery failures, stuck sessions ---

    async def _maintenance(self) -> None:
        loop = asyncio.get_running_loop()
        if loop.time() - self._last_maintenance < self.config.maintenance_interval:
            return
        self._last_maintenance = loop.time()
        await self.collect_failures()
        await self.recover_stale()

    async def collect_failures(self) -> int:
        """Turn failed outbound messages of sessions into `failed:<outbox id>` events (the `on_failed` path)."""
        async with self.store.read() as conn:  # usually none: do not queue for the write lock to find that out
            if (await conn.execute(_failed_unseen(conn, ("id",), 1))).first() is None:
                return 0
        async with self.store.begin() as conn:
            stmt = _failed_unseen(conn, _FAILED_COLUMNS, 500)
            if is_postgres(conn):
                stmt = stmt.with_for_update(skip_locked=True)
            rows = list(await conn.execute(stmt))
            if not rows:
                return 0
            now = self.clock()
            await events.add(
                conn,
                [
                    events.engine_event(
                        f"failed:{r.id}",
                        r.phone_number_id,
                        r.contact_key,
                        {
                            "outbound_id": r.id,
                            "session_id": r.session_id,
                            "node_id": r.node_id,
                            "error_code": r.error_code,
                            "error_text": r.error_text,
                        },
                        now,
                    )
                    for r in rows
                ],
            )
            await conn.execute(
                update(outbound_messages)
                .where(outbound_messages.c.id.in_([r.id for r in rows]))
                .values(engine_seen_at=now)
            )
            return len(rows)

    async def recover_stale(self) -> int:
        """Sessions left `running` longer than `stale_after` (a crash during an HTTP call): retry or end them."""
        now = self.clock()
        async with self.store.read() as conn:
            stmt = (
                select(sessions.c.id, sessions.c.contact_id)
                .where(text("state = 'running'"), sessions.c.updated_at < now - self.config.stale_after)
                .limit(100)
            )
            stale = list(await conn.execute(stmt))
        recovered = 0
        for session_id, contact_id in stale:
            jobs: list[HttpJob] = []
            async with self.store.begin() as conn:
                contact = await lock_contact_id(conn, contact_id)
                session = await load_active(conn, contact_id, lock=True) if contact else None
                if contact is None or session is None or session.id != session_id or session.state != "running":
                    continue
                turn = self._turn(conn, self.clock(), contact, [])
                await self.dispatcher.recover(turn, session)
                await flush_outbox(conn, turn.outgoing)
                jobs = turn.http_jobs
                recovered += 1
            self._spawn(jobs)
        return recovered


__all__ = ["AlreadyApplied", "EngineWorker", "mark_done"]
