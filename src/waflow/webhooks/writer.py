"""Group commit: many concurrent webhook requests, one inbox transaction.

Each request hands its parsed events (or its raw body, for a dead letter) to the single
`InboxWriter` task and awaits a future. The task takes everything that is pending — what
arrived while the previous transaction was committing, optionally lingering a little for more,
up to `max_events` events — writes it in ONE transaction, commits, and only then resolves each
request's future; the endpoint answers 200 after that. A request is thus acknowledged only once
its events are durable, while the cost of a commit (an fsync on SQLite) is shared by every
request in the batch. Under light load a batch is one request and nothing waits.

If a batch's transaction fails, each of its requests is retried alone so one bad write cannot
fail its neighbours; a request that still fails gets the exception (→ HTTP 500, and Meta
retries it later).

The work in flight is bounded: with `max_uncommitted_events`, a request that would take the
events queued or committing (not yet durable) past that bound is refused at once with
`WriterOverloadedError`, before anything of it is queued (→ HTTP 503 + Retry-After; Meta retries
non-200 answers), so that when the database cannot keep up the answers stay fast instead of
every request waiting behind an ever longer queue. A request is always taken when nothing is
uncommitted, however large it is.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from waflow.webhooks.metrics import COMMIT_EVENTS, COMMIT_SECONDS
from waflow.webhooks.persist import WriteOutcome, WriteRequest

log = logging.getLogger("waflow.webhooks.writer")

# One transaction over a list of requests → one outcome per request, in order.
CommitFn = Callable[[Sequence[WriteRequest]], Awaitable[list[WriteOutcome]]]


@dataclass(slots=True)
class _Job:
    request: WriteRequest
    future: asyncio.Future[WriteOutcome]


class WriterClosedError(RuntimeError):
    """The writer was stopped; nothing more is accepted."""


class WriterOverloadedError(RuntimeError):
    """Too many events wait for their commit: the request was refused and nothing of it queued."""

    def __init__(self, uncommitted: int, size: int, bound: int) -> None:
        super().__init__(f"{uncommitted} events uncommitted + {size} would exceed the bound of {bound}")
        self.uncommitted = uncommitted
        self.size = size
        self.bound = bound


class InboxWriter:
    """The single background task that batches inbox writes into group commits."""

    def __init__(
        self,
        commit: CommitFn,
        *,
        max_events: int = 5000,
        linger_s: float = 0.0,
        max_uncommitted_events: int | None = None,
    ) -> None:
        self._commit = commit
        self._max_events = max_events
        self._linger_s = linger_s
        self._max_uncommitted = max_uncommitted_events
        self._pending: list[_Job] = []
        self._pending_events = 0
        self._uncommitted = 0  # events of requests queued or in the commit running, not yet resolved
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.batches = 0  # commits done (for tests and benchmarks)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        if self._closing:
            raise WriterClosedError("the inbox writer was stopped")
        if not self.running:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="waflow-inbox-writer")

    async def stop(self) -> None:
        """Write what is pending, then stop."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    @property
    def uncommitted_events(self) -> int:
        """Events queued or being committed whose requests have not been answered yet."""
        return self._uncommitted

    async def write(self, request: WriteRequest) -> WriteOutcome:
        """Queue `request` and wait until the transaction holding it has committed."""
        return await self.submit(request)

    def submit(self, request: WriteRequest) -> asyncio.Future[WriteOutcome]:
        """Queue `request` now; the future resolves once the transaction holding it has committed.
        Raises `WriterOverloadedError` (nothing queued) when it would take the uncommitted events
        past `max_uncommitted_events`, and `WriterClosedError` once the writer was stopped."""
        if self._closing:
            raise WriterClosedError("the inbox writer was stopped")
        bound = self._max_uncommitted
        if bound is not None and self._uncommitted and self._uncommitted + request.size > bound:
            raise WriterOverloadedError(self._uncommitted, request.size, bound)
        if not self.running:
            self.start()
        future: asyncio.Future[WriteOutcome] = asyncio.get_running_loop().create_future()
        self._pending.append(_Job(request, future))
        self._pending_events += request.size
        self._uncommitted += request.size
        self._wake.set()
        return future

    def _take(self) -> list[_Job]:
        taken = 0
        count = 0
        for job in self._pending:
            if count and taken + job.request.size > self._max_events:
                break
            taken += job.request.size
            count += 1
        jobs, self._pending = self._pending[:count], self._pending[count:]
        self._pending_events -= taken
        return jobs

    async def _run(self) -> None:
        while True:
            if not self._pending:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            if self._linger_s and self._pending_events < self._max_events and not self._closing:
                await asyncio.sleep(self._linger_s)
            jobs = self._take()
            await self._commit_jobs(jobs)

    async def _commit_jobs(self, jobs: list[_Job]) -> None:
        started = time.perf_counter()
        try:
            outcomes = await self._commit([j.request for j in jobs])
        except Exception as exc:
            if len(jobs) == 1:
                log.error("inbox write failed: %s", _describe(exc))
                self._uncommitted -= jobs[0].request.size
                _fail(jobs[0], exc)
                return
            log.warning("inbox batch of %d requests failed (%s); retrying one by one", len(jobs), _describe(exc))
            for job in jobs:
                await self._commit_jobs([job])
            return
        self.batches += 1
        COMMIT_SECONDS.observe(time.perf_counter() - started)
        COMMIT_EVENTS.observe(sum(j.request.size for j in jobs))
        for job, outcome in zip(jobs, outcomes, strict=True):
            self._uncommitted -= job.request.size
            if not job.future.done():
                job.future.set_result(outcome)


def _fail(job: _Job, exc: BaseException) -> None:
    if not job.future.done():
        job.future.set_exception(exc)


def _describe(exc: BaseException) -> str:
    # the exception class and first line only: driver messages may quote parameters
    first = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {first[:200]}"
