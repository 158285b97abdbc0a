"""`StatusProcessor`: applies pending delivery-status events from the inbox in the background.

The endpoint writes status events `pending` and this processor applies them (the inline
alternative, `apply_statuses_inline=True`, puts the work inside the inbox commit, in front of the
200). Each batch is one transaction: take the events, apply them through `apply_many` (which keeps
sent → delivered → read monotonic and holds statuses whose message id is not known yet), mark
them done.

Where the events come from:

- **handed over in memory** (`offer`): the webhook writer passes each committed batch's new
  statuses — already parsed, with the JSON it stored — so the processor neither reads nor
  re-parses them. It claims them by id (`InboxRepository.take_open`): one another consumer took
  meanwhile is skipped, never applied twice;
- **read from the inbox** (`claim_payloads`, `FOR UPDATE SKIP LOCKED` on PostgreSQL so several
  processes may run one each): the backlog found at start, whatever the memory queue had to turn
  away (`max_queued`), a batch whose transaction failed, statuses written by other processes
  (`notify`), and a look every `idle_poll_s` when idle.

It is background work and must not delay the endpoint's answers:

- on SQLite its transactions are `background` (the store lets every waiting inbox commit of
  this process take the write lock first);
- a batch is sized to take about `target_batch_s` (it grows from `min_batch` to `batch_size`
  while batches finish faster, and shrinks when one takes longer), so neither the event loop nor
  the write lock is held for long at a stretch (6 ms on SQLite, 50 ms on PostgreSQL, where no
  webhook commit waits for it); once no status has arrived for 0.1 s it takes the largest batches;
- it yields to the event loop between batches, and once caught up it lets new statuses gather
  for `coalesce_s` before the next batch (fewer, larger transactions: each is an fsync).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson

from waflow.canonical import DeliveryStatus, ErrorDetail, EventKind, StatusUpdate
from waflow.faults import fault_point
from waflow.store import Store
from waflow.tasks import finish
from waflow.webhooks import metrics
from waflow.webhooks.persist import PendingStatus

log = logging.getLogger("waflow.webhooks.status")

_QUIET_S = 0.1  # no statuses handed over for this long: the endpoint is quiet


def status_from_payload(payload: dict[str, Any]) -> StatusUpdate:
    """The `StatusUpdate` an inbox status payload holds (as the parser wrote it, see
    `providers.cloud`), built without pydantic's validation when its fields have their usual
    shapes (~12 µs a status saved); anything unusual takes the validating path."""
    try:
        errors = payload["errors"]
        return StatusUpdate.model_construct(
            provider=payload["provider"],
            phone_number_id=payload["phone_number_id"],
            message_id=payload["message_id"],
            status=DeliveryStatus(payload["status"]),
            timestamp=datetime.fromisoformat(payload["timestamp"]),
            recipient_id=payload["recipient_id"],
            callback_data=payload["callback_data"],
            errors=[ErrorDetail.model_validate(e) for e in errors] if errors else [],
            conversation=payload["conversation"],
            pricing=payload["pricing"],
        )
    except (KeyError, TypeError, ValueError):
        return StatusUpdate.model_validate(payload)


class StatusProcessor:
    def __init__(
        self,
        store: Store,
        *,
        batch_size: int = 2000,
        min_batch: int = 50,
        target_batch_s: float | None = None,
        idle_poll_s: float = 0.5,
        coalesce_s: float = 0.02,
        max_queued: int = 50_000,
    ) -> None:
        self.store = store
        self.batch_size = batch_size  # the most one batch takes
        self.min_batch = min(min_batch, batch_size)
        # SQLite: a batch holds the single write lock the webhook commits wait for, so keep it short.
        # PostgreSQL: nothing waits on it but the event loop between round trips; short batches there
        # were mostly round trips (the backlog grew at 3,000 statuses/s offered).
        if target_batch_s is None:
            target_batch_s = 0.006 if store.dialect == "sqlite" else 0.05
        self.target_batch_s = target_batch_s
        self.idle_poll_s = idle_poll_s
        self.coalesce_s = coalesce_s
        self.max_queued = max_queued
        self._next = self.min_batch
        self._queue: collections.deque[PendingStatus] = collections.deque()
        self._scan_needed = True  # a backlog may be waiting in the inbox (start, overflow, failure)
        self._scanned_last = False
        self._last_offer = 0.0
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()  # stop(): return after the batch under way
        self._task: asyncio.Task[None] | None = None
        self.applied = 0
        self.batches = 0

    @property
    def queued(self) -> int:
        """Statuses handed over in memory and not applied yet."""
        return len(self._queue)

    def offer(self, statuses: Sequence[PendingStatus]) -> None:
        """Committed status events, handed over by the writer that stored them."""
        if not statuses:
            return
        self._last_offer = time.monotonic()
        if len(self._queue) + len(statuses) > self.max_queued:
            self._scan_needed = True  # they are in the inbox, pending: the scan finds them
        else:
            self._queue.extend(statuses)
        self._wake.set()

    def notify(self) -> None:
        """Status rows were committed that were not handed over: read the inbox now."""
        self._scan_needed = True
        self._wake.set()

    async def run_once(self, limit: int | None = None) -> int:
        """Apply one batch (at most `limit`, default `batch_size`); the number of events it took."""
        limit = limit or self.batch_size
        scan = self._scan_needed and (not self._queue or not self._scanned_last)
        self._scanned_last = scan
        if scan or not self._queue:
            n = await self._apply_from_inbox(limit)
            if n < limit:
                self._scan_needed = False
            return n
        batch = [self._queue.popleft() for _ in range(min(limit, len(self._queue)))]
        try:
            return await self._apply_handed(batch)
        except BaseException:
            self._scan_needed = True  # still pending in the inbox
            raise

    async def _apply_handed(self, batch: list[PendingStatus]) -> int:
        async with self.store.begin(background=True) as conn:
            taken = await self.store.inbox.take_open(conn, [p.event_id for p in batch])
            todo = batch if len(taken) == len(batch) else [p for p in batch if p.event_id in taken]
            if todo:
                metrics.note_foreign(await self.store.statuses.apply_many(
                    conn, [p.update for p in todo], raw_json=[p.payload_json for p in todo]
                ))
        fault_point("statuses.applied")
        self.applied += len(todo)
        self.batches += 1
        return len(batch)

    async def _apply_from_inbox(self, limit: int) -> int:
        async with self.store.begin(background=True) as conn:
            claimed = await self.store.inbox.claim_payloads(conn, EventKind.STATUS, limit=limit)
            if not claimed:
                return 0
            updates = [status_from_payload(orjson.loads(text)) for _id, text in claimed]
            metrics.note_foreign(
                await self.store.statuses.apply_many(conn, updates, raw_json=[text for _id, text in claimed])
            )
            await self.store.inbox.mark_done(conn, [id_ for id_, _ in claimed])
        fault_point("statuses.applied")
        self.applied += len(claimed)
        self.batches += 1
        return len(claimed)

    async def drain(self) -> int:
        """Apply until nothing is pending, in memory or in the inbox; the number applied."""
        before = self.applied
        self._scan_needed = True
        while await self.run_once():
            pass
        return self.applied - before

    async def _run(self) -> None:
        while not self._stopping.is_set():
            started = time.perf_counter()
            # nothing arrived lately: no answer to delay, so catch up in the largest batches
            quiet = time.monotonic() - self._last_offer > _QUIET_S
            limit = self.batch_size if quiet else self._next
            try:
                n = await self.run_once(limit)
            except Exception as exc:
                log.error("applying statuses failed (%s); retrying from the inbox", type(exc).__name__)
                n = 0
                await asyncio.sleep(self.coalesce_s)
            took = time.perf_counter() - started
            # size the next batch so that one takes about target_batch_s
            if quiet:
                pass
            elif n == limit and took < self.target_batch_s / 2:
                self._next = min(self.batch_size, limit * 2)
            elif took > self.target_batch_s:
                self._next = max(self.min_batch, limit // 2)
            if n < limit and not self._queue and not self._scan_needed:
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), self.idle_poll_s)
                except TimeoutError:
                    self._scan_needed = True  # idle: look for statuses other processes wrote
                # Caught up: let statuses gather for a moment instead of waking on every inbox
                # commit (with single-status POSTs that was one more fsync'd transaction per commit).
                await asyncio.sleep(self.coalesce_s)
            else:
                await asyncio.sleep(0)  # let the endpoint's requests run between batches

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._stopping.clear()
            self._task = asyncio.get_running_loop().create_task(self._run(), name="waflow-status-processor")

    async def stop(self) -> None:
        """Return after the batch under way (see `waflow.tasks`); what is left stays in the inbox."""
        self._stopping.set()
        self._wake.set()
        if self._task is not None:
            task, self._task = self._task, None
            await finish(task)
