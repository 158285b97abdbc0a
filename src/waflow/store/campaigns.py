"""Campaigns: a bulk template send. Each contact's message is an outbound row with `campaign_id`;
the campaign row holds the name, template, parameters, status (running/paused/done/cancelled), total.
Its rows per status are counted by revision 0006's triggers in `campaign_counts` (never by counting them)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from waflow.store.dialect import const, one_of
from waflow.store.tables import OPTED_OUT_CLASS, campaign_counts, campaigns, outbound_messages
from waflow.store.types import utcnow


@dataclass(frozen=True, slots=True)
class CampaignRecord:
    id: int
    name: str
    phone_number_id: str
    template: str
    language: str
    params: Any
    status: str
    total: int
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None


_COLUMNS = [campaigns.c[name] for name in CampaignRecord.__slots__]


class CampaignRepository:
    async def create(
        self, conn: AsyncConnection, *, name: str, phone_number_id: str, template: str, language: str, params: Any
    ) -> int:
        now = utcnow()
        stmt = (
            campaigns.insert()
            .values(name=name, phone_number_id=phone_number_id, template=template, language=language, params=params,
                    status="running", total=0, created_at=now, updated_at=now)
            .returning(campaigns.c.id)
        )
        return int((await conn.execute(stmt)).scalar_one())

    async def get(self, conn: AsyncConnection, campaign_id: int) -> CampaignRecord | None:
        row = (await conn.execute(select(*_COLUMNS).where(campaigns.c.id == campaign_id))).first()
        return CampaignRecord(**row._mapping) if row else None

    async def recent(self, conn: AsyncConnection, limit: int = 100) -> list[CampaignRecord]:
        stmt = select(*_COLUMNS).order_by(campaigns.c.id.desc()).limit(limit)
        return [CampaignRecord(**row._mapping) for row in await conn.execute(stmt)]

    async def set_status(
        self, conn: AsyncConnection, campaign_id: int, status: str, *, only_from: tuple[str, ...] | None = None
    ) -> bool:
        now = utcnow()
        values: dict[str, Any] = {"status": status, "updated_at": now}
        if status in ("done", "cancelled"):
            values["finished_at"] = now
        stmt = update(campaigns).where(campaigns.c.id == campaign_id)
        if only_from is not None:
            stmt = stmt.where(campaigns.c.status.in_(only_from))
        return bool((await conn.execute(stmt.values(values))).rowcount)

    async def add_total(self, conn: AsyncConnection, campaign_id: int, n: int) -> None:
        stmt = update(campaigns).where(campaigns.c.id == campaign_id)
        await conn.execute(stmt.values(total=campaigns.c.total + n, updated_at=utcnow()))

    async def counts(self, conn: AsyncConnection, campaign_id: int) -> dict[str, int]:
        """Outbound rows of the campaign per delivery status (statuses with none are absent): the counters,
        a range of at most statuses x writer shards rows."""
        c = campaign_counts
        stmt = select(c.c.status, func.sum(c.c.n)).where(c.c.campaign_id == campaign_id).group_by(c.c.status)
        return {str(r[0]): int(r[1]) for r in await conn.execute(stmt) if r[1]}

    async def counts_many(self, conn: AsyncConnection, campaign_ids: list[int]) -> dict[int, dict[str, int]]:
        """`counts` of several campaigns in one statement (campaigns with no row at all are absent)."""
        if not campaign_ids:
            return {}
        c = campaign_counts
        stmt = (
            select(c.c.campaign_id, c.c.status, func.sum(c.c.n))
            .where(c.c.campaign_id.in_(sorted(set(campaign_ids))))
            .group_by(c.c.campaign_id, c.c.status)
        )
        out: dict[int, dict[str, int]] = {}
        for cid, status, n in await conn.execute(stmt):
            if n:
                out.setdefault(int(cid), {})[str(status)] = int(n)
        return out

    async def opted_out_count(self, conn: AsyncConnection, campaign_id: int) -> int:
        """The campaign's rows refused because their contact opted out: a range of the partial index
        `ix_outbound_messages_opted_out` (revision 0008), exactly those rows."""
        o = outbound_messages
        stmt = select(func.count()).select_from(o).where(
            o.c.campaign_id == campaign_id, o.c.error_class == const(OPTED_OUT_CLASS)
        )
        return int((await conn.execute(stmt)).scalar_one())

    async def running_ids(self, conn: AsyncConnection) -> list[int]:
        stmt = select(campaigns.c.id).where(campaigns.c.status.in_(one_of(("running", "paused"))))
        return [int(x) for x in (await conn.execute(stmt)).scalars()]

    async def paused_ids(self, conn: AsyncConnection) -> list[int]:
        stmt = select(campaigns.c.id).where(campaigns.c.status == const("paused"))
        return [int(x) for x in (await conn.execute(stmt)).scalars()]
