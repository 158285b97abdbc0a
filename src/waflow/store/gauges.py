"""What `/metrics` reads on every scrape: bounded reads only (issue 12).

Outbound messages per status come from the outbox counters (revision 0006), never from counting
`outbound_messages`; open inbox events are counted over the partial index of open events
(`ix_inbound_events_open_by_kind`), whose size is the backlog, not the history; the lag (oldest open event,
oldest due unclaimed outbound row) is the first entry of that index per kind and of each claim lane.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from waflow.store.dialect import one_of
from waflow.store.outbox import OutboxRepository
from waflow.store.tables import inbound_events
from waflow.store.types import as_utc, utcnow

OPEN_STATES = ("pending", "failed")  # the partial indexes' `state IN ('pending', 'failed')`


@dataclass(frozen=True, slots=True)
class ScrapeCounts:
    messages_by_status: dict[str, int]
    open_events: list[tuple[str, str, int]]  # (kind, state, count)
    oldest_open_event_at: datetime | None = None  # when the oldest unprocessed inbox event arrived
    oldest_due_at: datetime | None = None  # the due time of the oldest due outbound row nobody has claimed


async def scrape_counts(conn: AsyncConnection, now: datetime | None = None) -> ScrapeCounts:
    """Also the lag: the oldest open event (one probe per kind of the open-events index, its first entry) and
    the oldest due unclaimed outbound row (one probe per claim lane, as `any_due`)."""
    now = now or utcnow()
    outbox = OutboxRepository()
    by_status = await outbox.status_counts(conn)
    i = inbound_events
    stmt = (
        select(i.c.kind, i.c.state, func.count())
        .where(i.c.state.in_(one_of(OPEN_STATES)))  # constants: the partial index is provably usable
        .group_by(i.c.kind, i.c.state)
    )
    rows = [(str(k), str(s), int(n)) for k, s, n in await conn.execute(stmt)]
    oldest: list[datetime] = []
    for kind in sorted({k for k, _s, _n in rows}):
        first = (
            select(i.c.received_at)
            .where(i.c.kind == kind, i.c.state.in_(one_of(OPEN_STATES)))
            .order_by(i.c.kind, i.c.id)
            .limit(1)
        )
        at = (await conn.execute(first)).scalar()
        if at is not None:
            oldest.append(as_utc(at))
    return ScrapeCounts(by_status, rows, min(oldest, default=None), await outbox.oldest_due_at(conn, now))
