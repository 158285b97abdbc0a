"""Dead letters: webhook bodies (or rejected fragments of them) that could not be parsed, kept raw
(headers sanitised by the caller).

Meta redelivers what it got no 200 for, for days, and may redeliver even what was answered: one
row per distinct body, keyed by `body_sha256` (a unique index), and a redelivery only counts a
copy (`copies`, `last_received_at`) in the same single `INSERT ... ON CONFLICT` statement. The
first copy's reason and headers are the ones kept.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from waflow.store.dialect import insert
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
    place: str | None  # where a rejected fragment sat in its body; None for a whole body
    copies: int  # how many times it was received
    last_received_at: datetime
    body_sha256: str | None  # None only for pre-0005 duplicates of an earlier row


_COLUMNS = [dead_letters.c[name] for name in DeadLetterRecord.__slots__]


def dead_letter_key(body: bytes, place: str | None = None) -> str:
    """The dedup key of a dead letter: sha256 of the raw body, or of a fragment's place + body."""
    return hashlib.sha256(body if place is None else place.encode() + b"\n" + body).hexdigest()


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
        place: str | None = None,
        key: str | None = None,
    ) -> int:
        """Keep `body` (once): the id of its row, new or — for a copy already kept — the existing
        one, whose `copies` is counted up. `key` defaults to `dead_letter_key(body, place)`."""
        at = as_utc(received_at) if received_at else utcnow()
        stmt = insert(conn, dead_letters).values(
            received_at=at,
            phone_number_id=phone_number_id,
            reason=reason,
            headers=headers or {},
            body=bytes(body),
            place=place,
            body_sha256=key or dead_letter_key(body, place),
            copies=1,
            last_received_at=at,
        )
        upsert = stmt.on_conflict_do_update(
            index_elements=[dead_letters.c.body_sha256],
            set_={
                "copies": dead_letters.c.copies + 1,
                # concurrent deliveries may commit out of order: keep the latest time
                "last_received_at": case(
                    (stmt.excluded.last_received_at > dead_letters.c.last_received_at, stmt.excluded.last_received_at),
                    else_=dead_letters.c.last_received_at,
                ),
            },
        ).returning(dead_letters.c.id)
        return int((await conn.execute(upsert)).scalar_one())

    async def get(self, conn: AsyncConnection, dead_letter_id: int) -> DeadLetterRecord | None:
        row = (await conn.execute(select(*_COLUMNS).where(dead_letters.c.id == dead_letter_id))).first()
        return DeadLetterRecord(**row._mapping) if row else None

    async def recent(self, conn: AsyncConnection, limit: int = 50) -> list[DeadLetterRecord]:
        stmt = select(*_COLUMNS).order_by(dead_letters.c.id.desc()).limit(limit)
        return [DeadLetterRecord(**row._mapping) for row in await conn.execute(stmt)]

    async def count(self, conn: AsyncConnection) -> int:
        """Distinct dead letters kept (a redelivered one counts once; see `copies`)."""
        return int((await conn.execute(select(func.count()).select_from(dead_letters))).scalar_one())
