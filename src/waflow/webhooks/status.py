"""`StatusProcessor`: applies pending delivery-status events from the inbox in the background.

The endpoint writes status events `pending` and this processor applies them (the inline
alternative, `apply_statuses_inline=True`, puts the work inside the inbox commit, in front of the
200). It claims the oldest pending status events (`FOR UPDATE SKIP LOCKED` on PostgreSQL, so
several processes may run one each), applies them through `apply_many` (which keeps
sent → delivered → read monotonic and holds statuses whose message id is not known yet), and
marks them done — in one transaction per batch.

It is background work and must not delay the endpoint's answers:

- on SQLite its transactions are `background` (the store lets every waiting inbox commit of
  this process take the write lock first);
- a batch is sized to take about `target_batch_s` (it grows from `min_batch` to `max_batch`
  while batches finish faster, and shrinks when one takes longer), so the write lock is never
  held for long at a stretch;
- it yields to the event loop between batches, and once caught up it lets new statuses
  gather for `coalesce_s` before the next batch.

Large batches are what make it cheap (a fixed number of statements per batch, see
`StatusRepository.apply_many`), so under a backlog it runs batch after batch at max size.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import orjson

from waflow.canonical import EventKind, StatusUpdate
from waflow.store import Store

log = logging.getLogger("waflow.webhooks.status")


class StatusProcessor:
    def __init__(
        self,
        store: Store,
        *,
        batch_size: int = 2000,
        min_batch: int = 100,
        target_batch_s: float = 0.015,
        idle_poll_s: float = 0.5,
        coalesce_s: float = 0.05,
    ) -> None:
        self.store = store
        self.batch_size = batch_size  # the most one batch takes
        self.min_batch = min(min_batch, batch_size)
        self.target_batch_s = target_batch_s
        self.idle_poll_s = idle_poll_s
        self.coalesce_s = coalesce_s
        self._next = self.min_batch
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.applied = 0
        self.batches = 0

    def notify(self) -> None:
        """New status rows were committed: look now instead of at the next poll."""
        self._wake.set()

    async def run_once(self, limit: int | None = None) -> int:
        """Apply one batch of pending statuses (at most `limit`, default `batch_size`); the number applied."""
        limit = limit or self.batch_size
        async with self.store.begin(background=True) as conn:
            claimed = await self.store.inbox.claim_payloads(conn, EventKind.STATUS, limit=limit)
            if not claimed:
                return 0
            updates: list[StatusUpdate] = []
            raw_json: list[str] = []
            for _id, payload in claimed:
                updates.append(StatusUpdate.model_validate(payload))
                # the history row keeps the canonical event: the inbox payload minus the wire object
                raw_json.append(orjson.dumps({k: v for k, v in payload.items() if k != "raw"}).decode())
            await self.store.statuses.apply_many(conn, updates, raw_json=raw_json)
            await self.store.inbox.mark_done(conn, [id_ for id_, _ in claimed])
        self.applied += len(claimed)
        self.batches += 1
        return len(claimed)

    async def drain(self) -> int:
        """Apply until nothing is pending; the number applied."""
        total = 0
        while n := await self.run_once():
            total += n
        return total

    async def _run(self) -> None:
        while True:
            started = time.perf_counter()
            limit = self._next
            try:
                n = await self.run_once(limit)
            except Exception as exc:
                log.error("applying statuses failed (%s); retrying", type(exc).__name__)
                n = 0
            took = time.perf_counter() - started
            # size the next batch so that one takes about target_batch_s
            if n == limit and took < self.target_batch_s / 2:
                self._next = min(self.batch_size, limit * 2)
            elif took > self.target_batch_s:
                self._next = max(self.min_batch, limit // 2)
            if n < limit:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.idle_poll_s)
                # Caught up: let statuses gather for a moment instead of waking on every inbox
                # commit (with single-status POSTs that was one more fsync'd transaction per commit).
                await asyncio.sleep(self.coalesce_s)
            else:
                await asyncio.sleep(0)  # let the endpoint's requests run between batches

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="waflow-status-processor")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
