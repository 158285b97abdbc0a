"""The message-template cache: what `GET /{waba}/message_templates` returned, per (waba, name, language).

The outbox checks template sends against it (exists, approved, parameters) before any HTTP call. A template
status webhook (approved, rejected, paused, ...) moves the cached status in the webhook's own transaction.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy import update as update_
from sqlalchemy.ext.asyncio import AsyncConnection

from waflow.canonical import TemplateStatusUpdate
from waflow.store.dialect import insert
from waflow.store.tables import templates
from waflow.store.types import utcnow


@dataclass(frozen=True, slots=True)
class TemplateRecord:
    id: int
    waba_id: str
    name: str
    language: str
    template_id: str | None
    status: str
    category: str | None
    parameter_format: str | None
    components: list[dict[str, Any]]
    synced_at: datetime


_COLUMNS = [templates.c[name] for name in TemplateRecord.__slots__]


@dataclass(frozen=True, slots=True)
class TemplateRow:
    """One template as the Graph API lists it (input of `replace_all`)."""

    name: str
    language: str
    status: str
    components: list[dict[str, Any]]
    template_id: str | None = None
    category: str | None = None
    parameter_format: str | None = None


class TemplateRepository:
    async def replace_all(self, conn: AsyncConnection, waba_id: str, rows: Iterable[TemplateRow]) -> int:
        """Make the cache of `waba_id` exactly `rows` (a full sync); returns how many are cached."""
        now = utcnow()
        values = [
            {
                "waba_id": waba_id,
                "name": r.name,
                "language": r.language,
                "template_id": r.template_id,
                "status": r.status,
                "category": r.category,
                "parameter_format": r.parameter_format,
                "components": r.components,
                "synced_at": now,
            }
            for r in rows
        ]
        await conn.execute(delete(templates).where(templates.c.waba_id == waba_id))
        if values:
            await conn.execute(insert(conn, templates), values)
        return len(values)

    async def upsert(self, conn: AsyncConnection, waba_id: str, row: TemplateRow) -> None:
        stmt = insert(conn, templates).values(
            waba_id=waba_id, name=row.name, language=row.language, template_id=row.template_id, status=row.status,
            category=row.category, parameter_format=row.parameter_format, components=row.components,
            synced_at=utcnow(),
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=["waba_id", "name", "language"],
            set_={k: stmt.excluded[k] for k in ("template_id", "status", "category", "parameter_format",
                                                   "components", "synced_at")},
        )
        await conn.execute(stmt)

    async def apply_status(self, conn: AsyncConnection, update: TemplateStatusUpdate) -> bool:
        """A `message_template_status_update` webhook (APPROVED, REJECTED, PAUSED, ...): the cached template's
        status follows it; False when the template is not cached (the next sync brings it with its status)."""
        stmt = (
            update_(templates)
            .where(templates.c.waba_id == update.waba_id, templates.c.name == update.name,
                   templates.c.language == update.language)
            .values(status=update.event.upper(), synced_at=utcnow())
        )
        return bool((await conn.execute(stmt)).rowcount)

    async def get(self, conn: AsyncConnection, waba_id: str, name: str, language: str) -> TemplateRecord | None:
        stmt = select(*_COLUMNS).where(
            templates.c.waba_id == waba_id, templates.c.name == name, templates.c.language == language
        )
        row = (await conn.execute(stmt)).first()
        return TemplateRecord(**row._mapping) if row else None

    async def all(self, conn: AsyncConnection, waba_id: str) -> list[TemplateRecord]:
        stmt = select(*_COLUMNS).where(templates.c.waba_id == waba_id).order_by(templates.c.name, templates.c.language)
        return [TemplateRecord(**row._mapping) for row in await conn.execute(stmt)]
