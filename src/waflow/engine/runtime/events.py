"""Engine events: timers, delivery failures, API starts, hand-backs and expiries enter the contact's inbox
queue as events of kind `other` with an `engine:` dedup key, so they are applied in the same per-contact
order as the user's messages, exactly once (the dedup key makes a second insert a no-op).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from waflow.canonical import EventKind
from waflow.store.inbox import InboxRepository, NewInboundEvent

PREFIX = "engine:"
inbox = InboxRepository()


def engine_event(
    key: str, phone_number_id: str, contact_key: str, payload: dict[str, Any], at: datetime
) -> NewInboundEvent:
    return NewInboundEvent(
        dedup_key=PREFIX + key,
        kind=EventKind.OTHER.value,
        phone_number_id=phone_number_id,
        payload={"engine": key.split(":", 1)[0], **payload},
        received_at=at,
        provider="engine",
        contact_key=contact_key,
    )


async def add(conn: AsyncConnection, events: list[NewInboundEvent]) -> list[int | None]:
    return await inbox.insert_events(conn, events)


def is_engine_event(dedup_key: str) -> bool:
    return dedup_key.startswith(PREFIX)
