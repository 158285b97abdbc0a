"""Dead letters: webhook bodies that could not be parsed, kept raw (headers sanitised by the caller)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from waflow.store.tables import dead_letters
from waflow.store.types import as_utc, utcnow


@dataclass(frozen=True, slots=True)
class DeadLetterRecord:
    id: int
    received_at: datetime
    phone_number_id: str | None
    reason: str
    headers: dict[str, Any]
    body: bytes


_COLUMNS = [dead_letters.c[name] for name in DeadLetterRecord.__slots__]


class DeadLetterRepository:
    async def add(
        self,
        conn: AsyncConnection,
        *,
        reason: str,
        body: bytes,
        headers: dict[str, Any] | None = None,
        phone_number_id: str | None = None,
        received_at: datetime | None = None,
    ) -> int:
        stmt = (
            dead_letters.insert()
            .values(
                received_at=as_utc(received_at) if received_at else utcnow(),
                phone_number_id=phone_number_id,
                reason=reason,
                headers=headers or {},
                body=bytes(body),
            )
            .returning(dead_letters.c.id)
        )
        return int((await conn.execute(stmt)).scalar_one())

    async def get(self, conn: AsyncConnection, dead_letter_id: int) -> DeadLetterRecord | None:
        row = (await conn.execute(select(*_COLUMNS).where(dead_letters.c.id == dead_letter_id))).first()
        return DeadLetterRecord(**row._mapping) if row else None

    async def recent(self, conn: AsyncConnection, limit: int = 50) -> list[DeadLetterRecord]:
        stmt = select(*_COLUMNS).order_by(dead_letters.c.id.desc()).limit(limit)
        return [DeadLetterRecord(**row._mapping) for row in await conn.execute(stmt)]

    async def count(self, conn: AsyncConnection) -> int:
        return int((await conn.execute(select(func.count()).select_from(dead_letters))).scalar_one())
