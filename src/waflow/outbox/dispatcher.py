"""`OutboxDispatcher`: claims due outbound rows, enforces limits and the 24 h window, sends, records.

One loop claims rows (`claim_due`: only the head of each recipient's queue, leased with `claimed_by` /
`claimed_until`; PostgreSQL `FOR UPDATE SKIP LOCKED`), one task per claimed row sends it (at most
`concurrency` at once), and the `Recorder` commits outcomes in groups. Since a recipient's next row is
claimable only once the previous one is accepted or failed for good (committed), messages to one
recipient leave strictly in enqueue order while different recipients go in parallel.

The store stays off the send path: claims are made a batch ahead (rows wait at the throughput limiter
while the next batch is claimed) and outcomes are committed by the recorder's own task, a group per
transaction, while the next sends go out. Per message the store costs a share of one claim and one
record transaction, each a fixed handful of statements (bench/outbox_dispatch.py measures it).

Per claimed row, in order: unknown-outcome budget → consent (`consent.refusal`: an opted-out contact gets
nothing but answers in a conversation they started; refused rows fail with class `opted_out`) → 24 h window
(fallback template or fail 131047) → template check against the `templates` cache → messaging tier (business-
initiated only; `waiting_reason 'tier'`) → pair limiter (skip the recipient, `'pair'`) → throughput limiter
(sleep until the slot; shared through Redis across processes) → send gate (`limits.SendGate`: at most the rate in
any sliding second, asked right before the send, so a late wake-up waits instead of bunching) → send with
`biz_opaque_callback_data = wf:<id>` → outcome (see `retry`)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import os
import secrets
import socket
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection

from waflow.canonical import DeliveryStatus, OutboundMessage
from waflow.cloudapi.client import CloudAPIClient
from waflow.cloudapi.errors import THROTTLING_CODES
from waflow.cloudapi.exceptions import CloudAPIError, CloudClientError
from waflow.faults import fault_point
from waflow.outbox import metrics
from waflow.outbox._fence import SendFence
from waflow.outbox.consent import OPT_OUT_NOTICE, OPTED_OUT, Consent, refusal
from waflow.outbox.limits import Limiters, LimiterUnavailable, make_limiters
from waflow.outbox.recorder import Accepted, Attempt, Failed, Outcome, Recorder, Requeue
from waflow.outbox.retry import PAIR_RATE_CODE, RetryPolicy, Verdict, classify_code
from waflow.outbox.templates import TemplateCache
from waflow.outbox.window import check_window
from waflow.store import Store, build_callback_data, utcnow
from waflow.store.bulk import in_one_hop
from waflow.store.campaigns import CampaignRepository
from waflow.store.contacts import ContactRecord
from waflow.store.outbox import ClaimedRow, OutboundRecord
from waflow.tasks import finish

log = logging.getLogger("waflow.outbox")

# A resend after an unknown outcome waits (row leased) for the status webhooks received before its grace ended
# to be applied, looking every quarter of STATUS_BACKLOG_RECHECK_S, for at most UNKNOWN_HOLD_S (and half the
# lease); then it goes back to the queue, due again after STATUS_BACKLOG_RECHECK_S. See `_may_resend`.
STATUS_BACKLOG_RECHECK_S = 1.0
UNKNOWN_HOLD_S = 20.0
# ... and, where the webhook intake runs in the same process, until it has kept up this long (a few of Meta's
# redelivery rounds: the emulator redelivers every 1 s).
INTAKE_CALM_S = 5.0
# A row whose consent was checked longer ago than this (it waited for a concurrency or throughput slot) is checked
# again, with its contact read afresh, just before it leaves: an opt-out recorded meanwhile stops it.
CONSENT_RECHECK_S = 0.5
# While the shared limiter (Redis) is unreachable nothing is sent; it is probed this often, and rows handed back
# are due again after it.
LIMITER_RECHECK_S = 1.0


def _default_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


@dataclass
class DispatcherConfig:
    rate_per_s: float = 80.0  # messages/s per phone number, all processes together (80 default, ≤ 1,000)
    concurrency: int = 64  # rows in flight in this process
    claim_batch: int = 128
    lease_s: float = 15.0  # renewed every lease_s / 3 while this process lives; a dead one's rows return after it
    claim_ahead_s: float = 2.0  # claim at most this many seconds of the number's rate ahead of sending
    poll_s: float = 0.1  # idle claim interval
    enforce_window: bool = True
    tier_limit: int | None = None  # distinct business-initiated recipients per moving 24 h; None = unlimited
    tier_scope: str | None = None  # tier counted per this key (portfolio id); default: the phone number id
    tier_recheck_s: float = 60.0
    check_templates: bool = True
    strict_throughput: bool = False  # True: never bunch sends after a late wake-up, at the cost of throughput
    maintenance_s: float = 1.0
    dispatcher_id: str = field(default_factory=_default_id)
    retry: RetryPolicy = field(default_factory=RetryPolicy)


@dataclass(frozen=True, slots=True)
class _Claimed:
    row: ClaimedRow
    contact: ContactRecord | None  # as read in the claim's transaction (None: no contact row)
    claimed_at: float = field(default_factory=time.monotonic)

    @property
    def last_inbound_at(self) -> datetime | None:
        return self.contact.last_inbound_at if self.contact is not None else None


class OutboxDispatcher:
    """Sends the outbox of one or more business numbers (one `CloudAPIClient` each).

    ```python
    async with OutboxDispatcher(store, client, limiters=make_limiters(redis_url)).running():
        ...  # rows enqueued with store.outbox.enqueue(...) are sent
    ```
    """

    def __init__(
        self,
        store: Store,
        client: CloudAPIClient | Mapping[str, CloudAPIClient],
        *,
        limiters: Limiters | None = None,
        config: DispatcherConfig | None = None,
        templates: Mapping[str, TemplateCache] | None = None,
    ) -> None:
        self.store = store
        self.clients: dict[str, CloudAPIClient] = (
            {client.phone_number_id: client} if isinstance(client, CloudAPIClient) else dict(client)
        )
        self.limiters = limiters or make_limiters(None)
        self.config = config or DispatcherConfig()
        if not 0 < self.config.rate_per_s <= 1000:
            raise ValueError("rate_per_s must be in (0, 1000]")
        self.claimer = self.config.dispatcher_id
        self.recorder = Recorder(store, self.claimer)
        if templates is not None:
            self.templates: dict[str, TemplateCache] = dict(templates)
        else:
            self.templates = {
                number: TemplateCache(store, c, c.waba_id)
                for number, c in self.clients.items()
                if c.waba_id and self.config.check_templates
            }
        self._wake = asyncio.Event()  # something changed: capacity freed, rows enqueued, outcomes committed
        self._stopping = asyncio.Event()  # stop(): rows still waiting for their turn are handed back
        self._waiting_slot: set[asyncio.Task[object]] = set()  # tasks parked on the throughput limiter
        self._more = asyncio.Event()  # rows may have become claimable: enqueued, or a commit settled a head
        self._committed = asyncio.Event()  # the recorder committed a group (drain re-checks at once)
        self._limiter_down_since: float | None = None  # the shared limiter stopped answering (sending paused)
        self._held: set[int] = set()  # rows leased to us and not yet through `_process` (the heartbeat renews them)
        self._last_heartbeat = time.monotonic()
        self.fence = SendFence(store, self.claimer)
        self._limiter_checked_at = -1e18
        self.recorder.on_commit.extend((self._more, self._wake, self._committed))
        self._in_flight = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop_task: asyncio.Task[None] | None = None
        self._last_recover = -1e18
        self._last_maintenance = -1e18
        self._last_fold = time.monotonic()
        self._backlog_read_at = -1e18
        self._oldest_pending_status: datetime | None = None
        # Seconds since this process's webhook intake last fell behind (`InboxWriter.calm_for`), when the
        # intake runs in this process (`waflow serve`); None elsewhere. See `_may_resend`.
        self.intake_calm_for: Callable[[], float] | None = None
        self.sent = 0

    # -- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        self._stopping.clear()
        problem = await self.limiters.problem()
        if problem is not None:  # starts anyway: sends begin once the limiter answers
            self._limiter_lost(problem)
        else:
            metrics.LIMITER_UP.set(1)
        self.recorder.start()
        for number, cache in self.templates.items():
            try:
                await cache.sync()
            except CloudClientError as exc:  # keep going: a miss re-syncs later
                log.warning("template sync for %s failed: %s", number, exc)
        self._loop_task = asyncio.get_running_loop().create_task(self._claim_loop(), name="waflow-outbox-claim")

    async def stop(self) -> None:
        """Stop claiming, let in-flight sends finish, hand back rows not yet sent, commit the outcomes."""
        self._stopping.set()
        self._wake.set()
        if self._loop_task is not None:
            # not cancelled: a claim cut short after its commit would leave the rows it leased to no one
            claim_loop, self._loop_task = self._loop_task, None
            await finish(claim_loop)
        for task in list(self._waiting_slot):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.recorder.stop()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[OutboxDispatcher]:
        await self.start()
        try:
            yield self
        finally:
            await self.stop()

    def notify(self) -> None:
        """Rows were enqueued: claim now instead of at the next poll."""
        self._more.set()
        self._wake.set()

    async def drain(self, timeout: float = 30.0) -> None:  # noqa: ASYNC109
        """Wait until no row is queued and nothing is in flight (TimeoutError after `timeout`)."""
        async with asyncio.timeout(timeout):
            while True:
                await self.recorder.flush()
                self._committed.clear()
                async with self.store.read() as conn:
                    queued = await self.store.outbox.queued_count(conn)
                if queued == 0 and self._in_flight == 0:
                    return
                # The last outcomes settle with a commit: look again right after one instead of up to a poll
                # interval later (rows coming due without a commit are caught by the timeout).
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.05):
                        await self._committed.wait()

    # -- claiming ----------------------------------------------------------------------------------

    async def _claim_loop(self) -> None:
        cfg = self.config
        # Refill in batches, not one row per finished send: every claim is a write transaction (an fsync on
        # SQLite, queued behind the recorder's commits). Rows claimed ahead wait on the throughput limiter,
        # so the next batch is claimed while the previous one is still being sent and sends never wait for
        # the store. Refilling once a quarter of the window is free keeps three quarters queued at the limiter.
        refill_at = max(1, min(cfg.claim_batch, cfg.concurrency) // 4)
        # After a claim that came back short the queue has nothing more due right now: a finished send frees
        # capacity but makes no row claimable, so only an enqueue (`notify`), a commit (it may settle the head of
        # a recipient's queue, or requeue a row) or the poll interval (rows coming due) is worth a new claim.
        # Without this every finished send of a draining or idle queue paid for an empty write transaction.
        exhausted = False
        last_claim = -1e18
        while not self._stopping.is_set():
            claimed: list[_Claimed] = []
            try:
                await self._housekeeping()
                ahead = max(1, math.ceil(cfg.rate_per_s * cfg.claim_ahead_s)) - self._in_flight
                want = min(cfg.concurrency - self._in_flight, cfg.claim_batch, ahead)
                if not await self._limiter_back():
                    want = 0  # paused: claim nothing while the shared limits cannot be consulted
                worth = not exhausted or self._more.is_set() or time.monotonic() - last_claim >= cfg.poll_s
                if worth and (want >= refill_at or (want > 0 and self._in_flight == 0)):
                    self._more.clear()
                    last_claim = time.monotonic()
                    claimed = await self.claim_due(want)
                    exhausted = len(claimed) < want
            except Exception:
                log.exception("claiming outbound rows failed; retrying")
                claimed = []
                await asyncio.sleep(cfg.poll_s)
            for item in claimed:
                self._held.add(item.row.record.id)
                self._in_flight += 1
                task = asyncio.get_running_loop().create_task(self._process(item))
                self._tasks.add(task)
                task.add_done_callback(self._done)
            metrics.IN_FLIGHT.set(self._in_flight)
            if not claimed or cfg.concurrency - self._in_flight < refill_at:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), cfg.poll_s)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._in_flight -= 1
        self._wake.set()
        if not task.cancelled() and task.exception() is not None:
            log.error("processing an outbound row crashed", exc_info=task.exception())

    async def claim_due(self, limit: int) -> list[_Claimed]:
        """Lease up to `limit` due heads of recipient queues, with their contacts (window and consent)."""
        if limit <= 0:
            return []
        async with self.store.read() as conn:
            if not await self.store.outbox.any_due(conn, phone_number_ids=list(self.clients)):
                return []

        async def claim(conn: AsyncConnection) -> list[_Claimed]:
            rows = await self.store.outbox.claim_due(
                conn, self.claimer, limit=limit, lease=timedelta(seconds=self.config.lease_s),
                phone_number_ids=list(self.clients),
            )
            found: dict[tuple[str, str], ContactRecord] = {}
            for number in {r.record.phone_number_id for r in rows}:
                keys = [r.record.contact_key for r in rows if r.record.phone_number_id == number]
                for key, contact in (await self.store.outbox.recipients(conn, number, keys)).items():
                    found[(number, key)] = contact
            return [_Claimed(r, found.get((r.record.phone_number_id, r.record.contact_key))) for r in rows]

        async with self.store.begin() as conn:
            claimed = await in_one_hop(conn, lambda: claim(conn))  # database work only: one hand-off on SQLite
        if claimed:
            fault_point("outbox.claimed")
        return claimed

    async def _housekeeping(self) -> None:
        now = time.monotonic()
        cfg = self.config
        if self._held and now - self._last_heartbeat >= cfg.lease_s / 3:
            self._last_heartbeat = now
            async with self.store.begin() as conn:  # the heartbeat: our leases last while we do
                await self.store.outbox.renew_leases(conn, self.claimer, sorted(self._held),
                                                     utcnow() + timedelta(seconds=cfg.lease_s))
        if now - self._last_recover >= max(0.2, min(cfg.lease_s / 4, 5.0)):
            self._last_recover = now
            async with self.store.begin() as conn:
                recovered = await self.store.outbox.recover_expired(
                    conn, grace=timedelta(seconds=cfg.retry.unknown_grace_s)
                )
            if recovered:
                log.warning("%d outbound rows had an expired lease: outcome unknown, reconciling", len(recovered))
                metrics.MESSAGES.labels("unknown").inc(len(recovered))
        if now - self._last_maintenance >= cfg.maintenance_s:
            self._last_maintenance = now
            await self.maintenance()

    async def maintenance(self) -> None:
        """Classify failures applied from webhooks without a class, finish campaigns, update gauges.

        Every statement reads an index range of what it acts on or a counter (revision 0006): the failed rows
        still unclassified (a partial index), the campaigns' and the queue's counters. On SQLite this runs in
        a read transaction and takes the write lock only when there is something to write."""
        repo = self.store.outbox
        campaigns = CampaignRepository()
        async with self.store.read() as conn:
            missing = await repo.unclassified_failures(conn)
            active = await campaigns.running_ids(conn)
            counts = await campaigns.counts_many(conn, active)
            paused = await campaigns.paused_ids(conn)
            depth = await repo.waiting_counts(conn)
        classes = {oid: cls for oid, code in missing if (cls := classify_code(code)) is not None}
        finished = [cid for cid, by_status in counts.items() if cid not in paused and not by_status.get("queued")]
        if classes or finished or self._fold_due():
            async with self.store.begin() as conn:
                if classes:
                    await repo.set_error_classes(conn, classes)
                for cid in finished:  # `only_from`: a campaign paused meanwhile stays paused
                    await campaigns.set_status(conn, cid, "done", only_from=("running",))
                await repo.fold_counters(conn)
        # A paused campaign's rows keep their own waiting reason; the gauge shows them apart as 'paused'.
        depth["paused"] = sum(counts.get(cid, {}).get("queued", 0) for cid in paused)
        for reason in ("", "pair", "tier", "retry", "throttled", "unknown_outcome", "paused", "limiter"):
            metrics.QUEUE_DEPTH.labels(reason).set(depth.get(reason, 0))

    def _fold_due(self) -> bool:
        """Fold the counter shards of exited connections about once a minute (PostgreSQL; cheap, rarely needed)."""
        now = time.monotonic()
        if now - self._last_fold < 60.0:
            return False
        self._last_fold = now
        return True

    # -- one row -----------------------------------------------------------------------------------

    def _submit(self, outcome: Outcome) -> None:
        self.recorder.submit(outcome)

    async def _process(self, item: _Claimed) -> None:
        try:
            await self._process_row(item)
        finally:  # its outcome is submitted (the recorder ends the lease), or it was never ours to send
            self._held.discard(item.row.record.id)

    async def _process_row(self, item: _Claimed) -> None:
        row, rec = item.row, item.row.record
        now = utcnow()
        client = self.clients[rec.phone_number_id]
        policy = self.config.retry
        failures = rec.attempts - row.throttles

        if rec.outcome_unknown_since is not None and failures >= policy.max_attempts:
            self._submit(Failed(rec.id, rec.error_code, rec.error_class or "retryable",
                                f"no answer after {failures} tries and no status webhook: {rec.error_text or ''}"))
            metrics.MESSAGES.labels("failed").inc()
            return
        if rec.outcome_unknown_since is not None and not await self._may_resend(rec.id, rec.due_at):
            return

        refused = _refusal(item.contact, rec, now)  # on the claim's snapshot of the contact
        if refused is not None:
            self._submit(Failed(rec.id, None, OPTED_OUT, refused))
            metrics.MESSAGES.labels(OPTED_OUT).inc()
            return

        message = rec.to_message()
        fallback_used = row.fallback_used
        if self.config.enforce_window or row.fallback_used:
            verdict = check_window(message, item.last_inbound_at, now, rec.fallback_template,
                                   fallback_used=row.fallback_used)
            if verdict.message is None:
                self._submit(Failed(rec.id, verdict.code, verdict.error_class or "", verdict.text or ""))
                metrics.MESSAGES.labels("failed").inc()
                return
            message, fallback_used = verdict.message, verdict.fallback_used

        if message.type == "template" and rec.phone_number_id in self.templates:
            try:
                problem = await self.templates[rec.phone_number_id].check(message.content)
            except CloudClientError as exc:
                log.warning("template check skipped (sync failed: %s)", exc)
                problem = None
            if problem is not None:
                self._submit(Failed(rec.id, problem.code, problem.error_class, problem.text,
                                    fallback_used=fallback_used))
                metrics.MESSAGES.labels("failed").inc()
                return

        try:
            go = await self._within_limits(item, fallback_used, now)
        except LimiterUnavailable as exc:  # the shared limits cannot be consulted: nothing may leave
            self._limiter_lost(str(exc))
            due = utcnow() + timedelta(seconds=LIMITER_RECHECK_S)
            self._submit(Requeue(rec.id, due, "limiter", fallback_used=fallback_used))
            return
        if go:
            await self._send(client, item, message, fallback_used, failures)  # nothing awaited since the gate

    async def _within_limits(self, item: _Claimed, fallback_used: bool, now: datetime) -> bool:
        """Tier, pair rate, throughput slot, consent re-check, the send fence and the send gate, in that order;
        True: send now.
        Every refusal is submitted here. Raises `LimiterUnavailable` before anything was sent."""
        rec = item.row.record
        if rec.business_initiated and self.config.tier_limit is not None:
            scope = self.config.tier_scope or rec.phone_number_id
            if not await self.limiters.tier.admit(scope, rec.contact_key, self.config.tier_limit):
                due = now + timedelta(seconds=self.config.tier_recheck_s)
                self._submit(Requeue(rec.id, due, "tier", fallback_used=fallback_used))
                metrics.DEFERRED.labels("tier").inc()
                return False

        pair_wait = await self.limiters.pair.try_acquire(rec.phone_number_id, rec.contact_key)
        if pair_wait > 0:
            self._submit(Requeue(rec.id, now + timedelta(seconds=pair_wait), "pair", fallback_used=fallback_used))
            metrics.DEFERRED.labels("pair").inc()
            return False

        waited = time.perf_counter()
        if not await self._throughput_slot(rec.phone_number_id):
            # Stopping before this row's turn: release it now, so the next process sends it at once
            # instead of waiting out the lease and the unknown-outcome grace of a row that never left.
            self._submit(Requeue(rec.id, now, "shutdown", fallback_used=fallback_used))
            return False
        # a row that waited since its claim gets the consent rule's last look, on its contact read with the mark
        recheck = time.monotonic() - item.claimed_at > CONSENT_RECHECK_S
        try:  # the fence: from its mark on the row may have been sent (a crash leaves it unknown, not untried)
            ours, contact = await self.fence.mark(rec.id, (rec.phone_number_id, rec.contact_key) if recheck else None)
        except Exception as exc:  # the row is still ours: back to the queue, sent later
            log.warning("outbox %d: could not mark it as being sent (%s): handed back", rec.id, type(exc).__name__)
            self._submit(Requeue(rec.id, now + timedelta(seconds=1), "retry", fallback_used=fallback_used))
            return False
        if not ours:  # our lease ran out (a stall) and another dispatcher took the row over: it is theirs to send
            log.warning("outbox %d: lease lost before its send: left to the dispatcher that took it over", rec.id)
            return False
        if recheck and (refused := _refusal(contact, rec, utcnow())):  # an opt-out recorded since the claim
            self._submit(Failed(rec.id, None, OPTED_OUT, refused, fallback_used=fallback_used))
            metrics.MESSAGES.labels(OPTED_OUT).inc()
            return False
        if not await self._gate(rec.phone_number_id):
            self._submit(Requeue(rec.id, now, "shutdown", fallback_used=fallback_used))
            return False
        metrics.LIMITER_WAIT.observe(time.perf_counter() - waited)
        return True

    def _limiter_lost(self, reason: str) -> None:
        """One warning per outage (not one per row); the claim loop pauses until `limiters.problem()` clears."""
        metrics.LIMITER_UP.set(0)
        if self._limiter_down_since is None:
            self._limiter_down_since = time.monotonic()
            log.warning("rate limiter unavailable (%s): sending paused, claimed rows handed back; checking every "
                        "%.0f s", reason, LIMITER_RECHECK_S)

    async def _limiter_back(self) -> bool:
        """While paused: whether the limiters answer again (checked at most every LIMITER_RECHECK_S)."""
        if self._limiter_down_since is None:
            return True
        now = time.monotonic()
        if now - self._limiter_checked_at < LIMITER_RECHECK_S:
            return False
        self._limiter_checked_at = now
        problem = await self.limiters.problem()
        if problem is not None:
            return False
        log.warning("rate limiter reachable again after %.0f s: sending resumes", now - self._limiter_down_since)
        self._limiter_down_since = None
        metrics.LIMITER_UP.set(1)
        return True

    @property
    def limiter_problem(self) -> str | None:
        """Why sending is paused (for readiness), or None."""
        if self._limiter_down_since is None:
            return None
        return f"rate limiter unavailable for {time.monotonic() - self._limiter_down_since:.0f} s: sending paused"

    async def _may_resend(self, outbound_id: int, grace_ended_at: datetime) -> bool:
        """The gate of a resend after an unknown outcome (the row is leased to us, its grace is over).

        Every status event received before the grace ended must be applied first: one of them may say the
        first send went out (the restarted process works through the webhooks that arrived while it was
        down; a busy one lags). The row's lease is kept while it waits, so nothing behind it moves and the
        anchor (`grace_ended_at`, the due time it was claimed at) stays put; after `UNKNOWN_HOLD_S` it goes
        back to the queue for a later look. Then the row is read again: a status applied meanwhile settled
        it, and nothing is sent. False: not now (handed back or settled)."""
        deadline = time.monotonic() + min(UNKNOWN_HOLD_S, self.config.lease_s / 2)
        while await self._statuses_behind(grace_ended_at) or self._intake_behind():
            if self._stopping.is_set() or time.monotonic() >= deadline:
                self._submit(Requeue(outbound_id, utcnow() + timedelta(seconds=STATUS_BACKLOG_RECHECK_S),
                                     "unknown_outcome"))
                metrics.DEFERRED.labels("status_backlog").inc()
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), STATUS_BACKLOG_RECHECK_S / 4)
        async with self.store.read() as conn:
            now_row = await self.store.outbox.get(conn, outbound_id)
        if now_row is None or now_row.status is not DeliveryStatus.QUEUED or now_row.provider_message_id:
            metrics.MESSAGES.labels("settled_by_status").inc()
            # the lease ends now (the recorder clears it on a settled row), so the recipient's next row goes on
            self._submit(Requeue(outbound_id, utcnow(), "settled"))
            return False  # a status webhook said the first send went out: it stays the only one
        return True

    def _intake_behind(self) -> bool:
        """Whether this process's webhook intake fell behind less than `INTAKE_CALM_S` ago: then the status that
        settles the row may still be at Meta, redelivered to an endpoint that answers too slowly to be heard
        (the stored-backlog check cannot see it). Unknown (no intake in this process): False."""
        return self.intake_calm_for is not None and self.intake_calm_for() < INTAKE_CALM_S

    async def _statuses_behind(self, grace_ended_at: datetime) -> bool:
        """Whether a status event received before `grace_ended_at` still waits to be applied (the oldest
        pending one, read at most every `STATUS_BACKLOG_RECHECK_S / 4`: the rows of one claim share a read)."""
        now = time.monotonic()
        if now - self._backlog_read_at >= STATUS_BACKLOG_RECHECK_S / 4:
            async with self.store.read() as conn:
                self._oldest_pending_status = await self.store.inbox.oldest_pending_status_at(conn)
            self._backlog_read_at = now
        oldest = self._oldest_pending_status
        return oldest is not None and oldest <= grace_ended_at

    async def _throughput_slot(self, phone_number_id: str) -> bool:
        """Wait for this number's next send slot; False when the dispatcher stops first.

        `stop()` cancels the tasks parked here (and only those: a send already under way finishes);
        that costs nothing per message, unlike racing every wait against a stop event."""
        if self._stopping.is_set():
            return False
        task = asyncio.current_task()
        assert task is not None
        self._waiting_slot.add(task)
        try:
            await self.limiters.throughput.wait_for_slot(
                phone_number_id, self.config.rate_per_s, strict=self.config.strict_throughput
            )
        except asyncio.CancelledError:
            if not self._stopping.is_set():
                raise
            task.uncancel()  # our own stop, handled: the row is handed back
            return False
        finally:
            self._waiting_slot.discard(task)
        return True

    async def _gate(self, phone_number_id: str) -> bool:
        """The cap at the moment of sending (`limits.SendGate`): a task woken late waits here instead of bunching
        with punctual ones; asked last, so nothing is awaited between it and the request. False: stopping."""
        while (wait := await self.limiters.gate.admit(phone_number_id, self.config.rate_per_s)) > 0:
            metrics.GATE_WAITS.inc()
            if self._stopping.is_set():
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), wait)
        return True

    async def _send(
        self, client: CloudAPIClient, item: _Claimed, message: OutboundMessage, fallback_used: bool, failures: int
    ) -> None:
        rec = item.row.record
        started = utcnow()
        t0 = time.perf_counter()
        try:
            result = await client.send(message, biz_opaque_callback_data=build_callback_data(rec.id))
        except CloudClientError as exc:
            metrics.SEND_SECONDS.observe(time.perf_counter() - t0)
            await self._on_error(item, exc, started, fallback_used, failures)
            return
        metrics.SEND_SECONDS.observe(time.perf_counter() - t0)
        fault_point("outbox.sent")
        self.sent += 1
        metrics.MESSAGES.labels("accepted").inc()
        attempt = Attempt("accepted", started, utcnow(), http_status=200)
        self._submit(Accepted(rec.id, result.message_id, attempt, fallback_used=fallback_used))

    async def _on_error(
        self, item: _Claimed, exc: CloudClientError, started: datetime, fallback_used: bool, failures: int
    ) -> None:
        row, rec = item.row, item.row.record
        now = utcnow()
        code = exc.code if isinstance(exc, CloudAPIError) else None
        throttles = row.throttles + (1 if code is not None and _is_throttle(code) else 0)
        counted = failures + (0 if throttles > row.throttles else 1)
        same_code = None
        if isinstance(exc, CloudAPIError) and exc.max_attempts is not None and code is not None:
            async with self.store.read() as conn:  # rare path: only codes with a bound of their own
                same_code = await self.store.outbox.attempts_with_code(conn, rec.id, code) + 1
        decision = self.config.retry.decide(exc, failures=counted, throttles=throttles, same_code=same_code)
        if decision.verdict is Verdict.THROTTLE and code == PAIR_RATE_CODE:
            delay = await self.limiters.pair.penalize(rec.phone_number_id, rec.contact_key, row.throttles)
            decision = dataclasses.replace(decision, delay_s=delay)
        outcome = "unknown" if decision.verdict is Verdict.UNKNOWN else "error"
        attempt = Attempt(outcome, started, now, http_status=decision.http_status, error_code=code,
                          detail=decision.text[:2000])
        if decision.verdict is Verdict.FAIL:
            metrics.MESSAGES.labels("failed").inc()
            self._submit(Failed(rec.id, code, decision.error_class, decision.text, attempt, fallback_used))
            return
        metrics.RETRIES.labels(str(code) if code is not None else type(exc).__name__).inc()
        metrics.MESSAGES.labels(decision.verdict.value).inc()
        reason = {Verdict.RETRY: "retry", Verdict.THROTTLE: "throttled", Verdict.UNKNOWN: "unknown_outcome"}[
            decision.verdict
        ]
        self._submit(
            Requeue(
                rec.id, now + timedelta(seconds=decision.delay_s), reason, attempt,
                throttled=decision.verdict is Verdict.THROTTLE,
                unknown_at=now if decision.verdict is Verdict.UNKNOWN else None,
                error=(code, decision.error_class, decision.text), fallback_used=fallback_used,
            )
        )


def _refusal(contact: ContactRecord | None, rec: OutboundRecord, now: datetime) -> str | None:
    """The consent rule for this row (a campaign's? the stop word's confirmation?) and contact."""
    notice = rec.node_id == OPT_OUT_NOTICE and rec.session_id is None
    return refusal(Consent.of(contact), now, campaign=rec.campaign_id is not None, notice=notice)


def _is_throttle(code: int) -> bool:
    return code in THROTTLING_CODES
