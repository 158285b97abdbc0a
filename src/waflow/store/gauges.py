"""What `/metrics` reads on every scrape: bounded reads only (issue 12).

Outbound messages per status come from the outbox counters (revision 0006), never from counting
`outbound_messages`; open inbox events are counted over the partial index of open events
(`ix_inbound_events_open_by_kind`), whose size is the backlog, not the history.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from waflow.store.dialect import one_of
from waflow.store.outbox import OutboxRepository
from waflow.store.tables import inbound_events

OPEN_STATES = ("pending", "failed")  # the partial indexes' `state IN ('pending', 'failed')`


@dataclass(frozen=True, slots=True)
class ScrapeCounts:
    messages_by_status: dict[str, int]
    open_events: list[tuple[str, str, int]]  # (kind, state, count)


async def scrape_counts(conn: AsyncConnection) -> ScrapeCounts:
    by_status = await OutboxRepository().status_counts(conn)
    i = inbound_events
    stmt = (
        select(i.c.kind, i.c.state, func.count())
        .where(i.c.state.in_(one_of(OPEN_STATES)))  # constants: the partial index is provably usable
        .group_by(i.c.kind, i.c.state)
    )
    rows = [(str(k), str(s), int(n)) for k, s, n in await conn.execute(stmt)]
    return ScrapeCounts(by_status, rows)
