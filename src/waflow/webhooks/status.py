"""`StatusProcessor`: applies pending delivery-status events from the inbox in the background.

The endpoint writes status events `pending` and this processor applies them (the inline
alternative, `apply_statuses_inline=True`, measured too slow for the ingest goal: see
`WebhookConfig`). It claims the oldest pending status events (`FOR UPDATE SKIP LOCKED` on
PostgreSQL, so several processes may run one each), applies them through `apply_many` (which
keeps sent → delivered → read monotonic and holds statuses whose
message id is not known yet), and marks them done — in one transaction per batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from waflow.canonical import EventKind, StatusUpdate
from waflow.store import Store

log = logging.getLogger("waflow.webhooks.status")


class StatusProcessor:
    def __init__(self, store: Store, *, batch_size: int = 500, idle_poll_s: float = 0.5) -> None:
        self.store = store
        self.batch_size = batch_size
        self.idle_poll_s = idle_poll_s
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.applied = 0

    def notify(self) -> None:
        """New status rows were committed: look now instead of at the next poll."""
        self._wake.set()

    async def run_once(self) -> int:
        """Apply one batch of pending statuses; the number applied."""
        async with self.store.begin() as conn:
            records = await self.store.inbox.claim_pending(conn, EventKind.STATUS, limit=self.batch_size)
            if not records:
                return 0
            updates = [StatusUpdate.model_validate(r.payload) for r in records]
            await self.store.statuses.apply_many(conn, updates)
            await self.store.inbox.mark_done(conn, [r.id for r in records])
        self.applied += len(records)
        return len(records)

    async def drain(self) -> int:
        """Apply until nothing is pending; the number applied."""
        total = 0
        while n := await self.run_once():
            total += n
        return total

    async def _run(self) -> None:
        while True:
            try:
                n = await self.run_once()
            except Exception as exc:
                log.error("applying statuses failed (%s); retrying", type(exc).__name__)
                n = 0
            if n < self.batch_size:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.idle_poll_s)

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="waflow-status-processor")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
