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
every request waiting behind an ever longer queue. With `max_commit_wait_s` the same refusal
(`WriterTooSlowError`) happens when the writer predicts the request would wait longer than that
for its commit (see `predicted_wait_s`): the count bound alone never fires when the load is
bounded by the senders' connections but the commits are slow. A request is always taken when
nothing is uncommitted, however large it is; a request taken is always committed and resolved.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from waflow.webhooks.metrics import COMMIT_EVENTS, COMMIT_SECONDS
from waflow.webhooks.persist import WriteOutcome, WriteRequest

log = logging.getLogger("waflow.webhooks.writer")

# One transaction over a list of requests → one outcome per request, in order.
CommitFn = Callable[[Sequence[WriteRequest]], Awaitable[list[WriteOutcome]]]


# Weight of the latest commit in the throughput estimate (an EWMA per commit): under load a commit ends every
# few tens of milliseconds, so the estimate follows a slower database within a few commits.
RATE_ALPHA = 0.25
# A request answered after waiting longer than this for its commit means the intake fell behind (`calm_for`):
# well under Meta's patience, so it flags the stretch in which redeliveries start, before they are due.
FELL_BEHIND_S = 1.0


@dataclass(slots=True)
class _Job:
    request: WriteRequest
    future: asyncio.Future[WriteOutcome]
    queued_at: float


class WriterClosedError(RuntimeError):
    """The writer was stopped; nothing more is accepted."""


class WriterOverloadedError(RuntimeError):
    """Too many events wait for their commit: the request was refused and nothing of it queued."""

    bound: int | None  # the count bound it would pass (None: refused by the time bound)

    def __init__(self, uncommitted: int, size: int, bound: int) -> None:
        super().__init__(f"{uncommitted} events uncommitted + {size} would exceed the bound of {bound}")
        self.uncommitted = uncommitted
        self.size = size
        self.bound = bound


class WriterTooSlowError(WriterOverloadedError):
    """The request would wait longer than `max_commit_wait_s` for its commit: refused, nothing of it queued."""

    def __init__(self, uncommitted: int, size: int, wait_s: float, budget_s: float, rate: float | None) -> None:
        shown = f"{rate:.0f} events/s" if rate is not None else "no commit measured yet"
        RuntimeError.__init__(
            self,
            f"predicted commit wait {wait_s:.2f} s ({uncommitted} events uncommitted, {shown}) exceeds "
            f"the budget of {budget_s:g} s",
        )
        self.uncommitted = uncommitted
        self.size = size
        self.bound = None
        self.wait_s = wait_s
        self.budget_s = budget_s


class InboxWriter:
    """The single background task that batches inbox writes into group commits."""

    def __init__(
        self,
        commit: CommitFn,
        *,
        max_events: int = 5000,
        linger_s: float = 0.0,
        max_uncommitted_events: int | None = None,
        max_commit_wait_s: float | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self._commit = commit
        self._max_events = max_events
        self._linger_s = linger_s
        self._max_uncommitted = max_uncommitted_events
        self._max_wait_s = max_commit_wait_s
        self._clock = clock  # seconds, monotonic: commit durations and waiting ages (injectable for tests)
        self._behind_at = -math.inf  # when a request last waited over FELL_BEHIND_S or was refused
        # throughput estimate: EWMAs of a commit's events and of its duration (their ratio: events/s)
        self._ewma_events = 0.0
        self._ewma_seconds = 0.0
        self._batch: list[_Job] = []  # the jobs of the commit running (oldest first)
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

    @property
    def commit_rate(self) -> float | None:
        """Recent commit throughput, events per second of committing (None before the first commit)."""
        return self._ewma_events / self._ewma_seconds if self._ewma_seconds > 0 else None

    def oldest_wait_s(self) -> float:
        """How long the oldest request not yet resolved has waited (0 when none waits)."""
        for job in self._batch:
            if not job.future.done():
                return self._clock() - job.queued_at
        return self._clock() - self._pending[0].queued_at if self._pending else 0.0

    def predicted_wait_s(self) -> float:
        """How long a request queued now would wait for its commit: the events ahead of it (queued or
        committing) at the recent commit throughput — or, if longer, how long the oldest of them has waited.

        Why this predictor: the writer drains in FIFO order at a measured rate, so the events ahead over that
        rate is what a new request waits, and it needs nothing but the commits the writer does anyway. The
        rate is the ratio of per-commit EWMAs (events committed over time spent committing), so large batches
        weigh by their size. The request's own events are left out on purpose: a commit's fixed cost (the
        transaction, the fsync) is shared by its events, so a rate measured on the single-request commits of
        light load understates what a large batch reaches, and counting the request itself would refuse
        Meta's 1,000-update POST arriving behind one small commit; under overload the events ahead dominate
        anyway. The oldest request's age covers what the rate cannot see yet: it is updated when a commit
        ends, so a commit stalled on the database (a lock, a slow fsync) shows only in how long it takes."""
        rate = self.commit_rate
        ahead = self._uncommitted / rate if rate else 0.0
        return max(ahead, self.oldest_wait_s())

    def fell_behind(self) -> None:
        """Note that webhooks are coming late (the receiver saw a redelivered one): `calm_for` restarts."""
        self._behind_at = self._clock()

    def calm_for(self) -> float:
        """Seconds since the intake last fell behind (a request answered after waiting more than `FELL_BEHIND_S`
        for its commit, refused, or carrying a redelivered status: `fell_behind`): a webhook Meta sent meanwhile
        may be waiting for its redelivery. The
        outbox holds resends after an unknown outcome until this has been calm a while (`INTAKE_CALM_S`)."""
        return self._clock() - self._behind_at

    def check_admission(self, size: int) -> None:
        """Raise `WriterOverloadedError` (or its `WriterTooSlowError`) if a request of `size` events would
        be refused now; nothing is queued either way. Never refuses while nothing is uncommitted."""
        if not self._uncommitted:
            return
        bound = self._max_uncommitted
        if bound is not None and self._uncommitted + size > bound:
            self._behind_at = self._clock()
            raise WriterOverloadedError(self._uncommitted, size, bound)
        budget = self._max_wait_s
        if budget is not None and (wait := self.predicted_wait_s()) > budget:
            self._behind_at = self._clock()
            raise WriterTooSlowError(self._uncommitted, size, wait, budget, self.commit_rate)

    async def write(self, request: WriteRequest) -> WriteOutcome:
        """Queue `request` and wait until the transaction holding it has committed."""
        return await self.submit(request)

    def submit(self, request: WriteRequest) -> asyncio.Future[WriteOutcome]:
        """Queue `request` now; the future resolves once the transaction holding it has committed.
        Raises `WriterOverloadedError` (nothing queued) when it would take the uncommitted events
        past `max_uncommitted_events` or (`WriterTooSlowError`) wait longer than `max_commit_wait_s`
        (`check_admission`), and `WriterClosedError` once the writer was stopped."""
        if self._closing:
            raise WriterClosedError("the inbox writer was stopped")
        self.check_admission(request.size)
        if not self.running:
            self.start()
        future: asyncio.Future[WriteOutcome] = asyncio.get_running_loop().create_future()
        self._pending.append(_Job(request, future, self._clock()))
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
            self._batch = jobs = self._take()
            try:
                await self._commit_jobs(jobs)
            finally:
                self._batch = []

    async def _commit_jobs(self, jobs: list[_Job]) -> None:
        started = self._clock()
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
        seconds = self._clock() - started
        events = sum(j.request.size for j in jobs)
        COMMIT_SECONDS.observe(seconds)
        COMMIT_EVENTS.observe(events)
        if seconds > 0:
            self._ewma_events += RATE_ALPHA * (events - self._ewma_events)
            self._ewma_seconds += RATE_ALPHA * (seconds - self._ewma_seconds)
        if jobs and started + seconds - jobs[0].queued_at > FELL_BEHIND_S:  # the first queued waited longest
            self._behind_at = started + seconds
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
