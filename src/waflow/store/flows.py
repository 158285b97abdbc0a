"""Flow versions: every deployed flow definition, immutable, numbered 1, 2, ... per flow.

A version is identified by its content hash (the same definition deployed twice is one version);
at most one version of a flow is `active` (the one new sessions start on). Sessions record the hash
of the version they started with and keep running it after a newer version is deployed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from waflow.store.dialect import lock_keys
from waflow.store.tables import flow_versions
from waflow.store.types import utcnow

LOCK_CLASS_FLOW = 0x666C6F  # "flo": deploying a flow id

_generation = 0


def deploy_generation() -> int:
    """A counter bumped by every deploy / deactivate made through this process's repositories.

    It lets a process's engine catalogs notice their own process's deploys without asking the database every
    round (`FlowCatalog.refresh`). It is bumped when the statements run, not when they commit: a reader that
    sees it change must look in the database until the change shows (or give up after a bound).
    """
    return _generation


def _bump() -> None:
    global _generation
    _generation += 1


@dataclass(frozen=True, slots=True)
class FlowVersionRecord:
    id: int
    flow_id: str
    version: int
    content_hash: str
    definition: dict[str, Any]
    deployed_at: datetime
    active: bool


_COLUMNS = [flow_versions.c[name] for name in FlowVersionRecord.__slots__]


def _record(row: Any) -> FlowVersionRecord:
    return FlowVersionRecord(**row._mapping)


class FlowVersionRepository:
    async def deploy(
        self, conn: AsyncConnection, flow_id: str, content_hash: str, definition: dict[str, Any]
    ) -> tuple[FlowVersionRecord, bool]:
        """Make `definition` the active version of `flow_id`; returns (the version, whether it is new).

        The same hash as a stored version reuses (and re-activates) that row: no new version.
        """
        await lock_keys(conn, LOCK_CLASS_FLOW, [flow_id])  # PostgreSQL; SQLite writers are serialised
        _bump()
        existing = await self.by_hash(conn, flow_id, content_hash)
        if existing is not None and existing.active:
            return existing, False
        await conn.execute(
            update(flow_versions)
            .where(flow_versions.c.flow_id == flow_id, flow_versions.c.active.is_(True))
            .values(active=False)
        )
        if existing is not None:
            stmt = update(flow_versions).where(flow_versions.c.id == existing.id).values(active=True)
            await conn.execute(stmt)
            return FlowVersionRecord(**{**_asdict(existing), "active": True}), False
        latest = select(func.max(flow_versions.c.version)).where(flow_versions.c.flow_id == flow_id)
        number = int((await conn.execute(latest)).scalar_one_or_none() or 0) + 1
        stmt_insert = (
            flow_versions.insert()
            .values(
                flow_id=flow_id,
                version=number,
                content_hash=content_hash,
                definition=definition,
                deployed_at=utcnow(),
                active=True,
            )
            .returning(*_COLUMNS)
        )
        return _record((await conn.execute(stmt_insert)).one()), True

    async def by_hash(self, conn: AsyncConnection, flow_id: str, content_hash: str) -> FlowVersionRecord | None:
        stmt = select(*_COLUMNS).where(flow_versions.c.flow_id == flow_id, flow_versions.c.content_hash == content_hash)
        row = (await conn.execute(stmt)).first()
        return _record(row) if row else None

    async def get(self, conn: AsyncConnection, flow_id: str, version: int) -> FlowVersionRecord | None:
        stmt = select(*_COLUMNS).where(flow_versions.c.flow_id == flow_id, flow_versions.c.version == version)
        row = (await conn.execute(stmt)).first()
        return _record(row) if row else None

    async def active(self, conn: AsyncConnection, flow_id: str) -> FlowVersionRecord | None:
        stmt = select(*_COLUMNS).where(flow_versions.c.flow_id == flow_id, flow_versions.c.active.is_(True))
        row = (await conn.execute(stmt)).first()
        return _record(row) if row else None

    async def all_active(self, conn: AsyncConnection) -> list[FlowVersionRecord]:
        stmt = select(*_COLUMNS).where(flow_versions.c.active.is_(True)).order_by(flow_versions.c.flow_id)
        return [_record(row) for row in await conn.execute(stmt)]

    async def fingerprint(self, conn: AsyncConnection) -> tuple[int, int]:
        """(count, sum of ids) of the active versions: changes whenever a deploy changes what is active."""
        count, total = (await conn.execute(_FINGERPRINT)).one()
        return int(count), int(total)

    async def history(self, conn: AsyncConnection, flow_id: str) -> list[FlowVersionRecord]:
        stmt = select(*_COLUMNS).where(flow_versions.c.flow_id == flow_id).order_by(flow_versions.c.version)
        return [_record(row) for row in await conn.execute(stmt)]

    async def deactivate(self, conn: AsyncConnection, flow_id: str) -> bool:
        """Stop starting new sessions on `flow_id` (running ones go on)."""
        _bump()
        stmt = (
            update(flow_versions)
            .where(flow_versions.c.flow_id == flow_id, flow_versions.c.active.is_(True))
            .values(active=False)
        )
        return (await conn.execute(stmt)).rowcount > 0


# built once (a poll's statement: building it and its cache key cost more than running it)
_FINGERPRINT = select(func.count(), func.coalesce(func.sum(flow_versions.c.id), 0)).where(
    flow_versions.c.active.is_(True)
)


def _asdict(record: FlowVersionRecord) -> dict[str, Any]:
    return {name: getattr(record, name) for name in FlowVersionRecord.__slots__}
