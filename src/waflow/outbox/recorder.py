"""Writes send outcomes to the store in batches: one transaction takes whatever finished meanwhile.

A dispatcher finishes hundreds of sends a second; one transaction each would cost an fsync each on
SQLite, and one statement per row per step cost ~3 ms of CPU per message (aiosqlite thread hops,
SQLAlchemy compilation). The recorder queues outcomes and commits a group with the store's batch
writes (`record_attempts`, `record_accepted_many`, `record_failed_many`, `release_many`). A row stays
leased (`claimed_by`) until its outcome is committed, so nothing can claim it — or the next message to
the same recipient — early.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from waflow.faults import fault_point
from waflow.outbox.retry import classify_code
from waflow.store import Store
from waflow.store.bulk import in_one_hop
from waflow.store.dialect import LOCK_CLASS_WAMID, lock_keys
from waflow.store.outbox import Acceptance, AcceptedBatch, AttemptRow, Failure, Release

log = logging.getLogger("waflow.outbox")


@dataclass(frozen=True, slots=True)
class Attempt:
    outcome: str  # accepted / error / unknown
    started_at: datetime
    finished_at: datetime
    http_status: int | None = None
    error_code: int | None = None
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class Accepted:
    outbound_id: int
    provider_message_id: str
    attempt: Attempt
    fallback_used: bool = False


@dataclass(frozen=True, slots=True)
class Failed:
    outbound_id: int
    code: int | None
    error_class: str
    text: str
    attempt: Attempt | None = None
    fallback_used: bool = False


@dataclass(frozen=True, slots=True)
class Requeue:
    outbound_id: int
    due_at: datetime
    reason: str
    attempt: Attempt | None = None
    throttled: bool = False
    unknown_at: datetime | None = None
    error: tuple[int | None, str | None, str | None] | None = None
    fallback_used: bool = False


Outcome = Accepted | Failed | Requeue


class Recorder:
    """Queues outcomes and commits them in groups: one transaction, a fixed handful of statements per group.

    A group is whatever finished while the previous commit ran (so under load groups grow by themselves),
    topped up for at most `linger_s` when it is still small. A commit costs ~1-3 ms of CPU whatever its
    size (BEGIN IMMEDIATE, ~6 statements, an fsync): at 80 msg/s one commit per outcome was most of the
    dispatcher's CPU, so a small group waits up to 20 ms for company; at 1,000 msg/s groups hold 20-200
    rows. The wait delays only the next message to the *same* recipient (its row stays leased until the
    commit), which the pair limit spaces by seconds anyway once past its burst.
    """

    def __init__(
        self, store: Store, claimer: str, *, max_batch: int = 1000, linger_s: float = 0.02, min_group: int = 50
    ) -> None:
        self.store = store
        self.claimer = claimer
        self.max_batch = max_batch
        self.linger_s = linger_s
        self.min_group = min_group
        self._queue: asyncio.Queue[Outcome] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._busy = False
        self.on_commit: list[asyncio.Event] = []
        self.committed = 0
        self.commits = 0

    def submit(self, outcome: Outcome) -> None:
        self._queue.put_nowait(outcome)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="waflow-outbox-recorder")

    async def stop(self) -> None:
        """Commit what is queued, then stop."""
        await self.flush()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def flush(self) -> None:
        """Return once every outcome submitted so far is committed."""
        await self._queue.join()

    async def _run(self) -> None:
        while True:
            first = await self._queue.get()
            self._busy = True
            batch = [first]
            try:
                if self.linger_s > 0 and self._queue.qsize() + 1 < self.min_group:
                    # A small group: wait a few ms for more rather than pay a commit (an fsync on SQLite) for
                    # a handful of rows. The rows stay leased meanwhile, so nothing can overtake them.
                    await asyncio.sleep(self.linger_s)
                while len(batch) < self.max_batch and not self._queue.empty():
                    batch.append(self._queue.get_nowait())
                await self._commit(batch)
            finally:
                self._busy = False
                for _ in batch:
                    self._queue.task_done()
            for event in self.on_commit:
                event.set()

    async def _commit(self, batch: list[Outcome]) -> None:
        attempts: list[AttemptRow] = []
        accepted: list[Acceptance] = []
        failed: list[Failure] = []
        releases: list[Release] = []
        finished: dict[int, datetime] = {}
        for outcome in batch:
            oid, attempt = outcome.outbound_id, outcome.attempt
            if attempt is not None:
                attempts.append(
                    AttemptRow(oid, attempt.outcome, attempt.started_at, attempt.finished_at, attempt.http_status,
                               attempt.error_code, attempt.detail)
                )
            if isinstance(outcome, Accepted):
                accepted.append(Acceptance(oid, outcome.provider_message_id, outcome.attempt.finished_at))
                finished[oid] = outcome.attempt.finished_at
            elif isinstance(outcome, Failed):
                failed.append(Failure(oid, outcome.code, outcome.error_class, outcome.text))
            else:
                releases.append(Release(oid, outcome.due_at, outcome.reason, outcome.throttled, outcome.unknown_at,
                                        outcome.error))
        fallback = [o.outbound_id for o in batch if o.fallback_used]
        wamids = [o.provider_message_id for o in accepted]
        repo = self.store.outbox
        delay = 0.05
        while True:
            try:

                async def write(conn: AsyncConnection) -> tuple[list[int | None], AcceptedBatch, list[bool | None]]:
                    # Status appliers take the wamid advisory locks before any row lock; so do we, for the whole
                    # batch at once (sorted, one statement), before the attempts' UPDATE locks the rows.
                    await lock_keys(conn, LOCK_CLASS_WAMID, wamids)
                    numbers = await repo.record_attempts(conn, attempts)
                    await repo.set_fallback_used_many(conn, fallback)
                    done = await repo.record_accepted_many(conn, accepted, classify=classify_code)
                    again = list(releases)
                    for oid, other in done.conflicts.items():
                        # A resend after an unknown outcome whose first send was accepted after all: both went out.
                        log.warning("outbox %d: already has provider id %r; this send was accepted too", oid, other)
                        again.append(Release(oid, finished[oid], None))
                    failed_now = await repo.record_failed_many(conn, failed)
                    await repo.release_many(conn, self.claimer, again)
                    return numbers, done, failed_now

                async with self.store.begin() as conn:
                    # database work only: on SQLite it runs on the connection's thread in one hand-off
                    numbers, done, failed_now = await in_one_hop(conn, lambda: write(conn))
                lost = {a.outbound_id for a, n in zip(attempts, numbers, strict=True) if n is None}
                lost.update(done.missing)
                lost.update(f.outbound_id for f, ok in zip(failed, failed_now, strict=True) if ok is None)
                if lost:
                    log.warning("outcomes for %d outbound rows that no longer exist were dropped: %s",
                                len(lost), sorted(lost)[:20])
                fault_point("outbox.recorded")
                self.committed += len(batch)
                self.commits += 1
                return
            except Exception:  # a transient database error: the whole batch rolled back; write it again
                log.exception("recording %d send outcomes failed; retrying", len(batch))
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
