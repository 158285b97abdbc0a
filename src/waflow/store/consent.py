"""Consent: a contact's opt-out state and the history of its changes (revision 0008).

`set` is the one writer of `contacts.opted_out` / `opted_out_at`: it changes them only when the state
changes, and then appends a `consent_events` row (what, how, who, when) in the same transaction, so the
history is exactly the sequence of changes. What the state means for sending is the outbox's consent
rule (`waflow.outbox.consent`), not the store's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from waflow.store.contacts import _COLUMNS as _CONTACT_COLUMNS
from waflow.store.contacts import ContactRecord, _record
from waflow.store.tables import consent_events, contacts
from waflow.store.types import as_utc, utcnow

OPT_OUT, OPT_IN = "opt_out", "opt_in"


@dataclass(frozen=True, slots=True)
class ConsentEventRecord:
    id: int
    phone_number_id: str
    contact_id: int
    contact_key: str
    action: str  # opt_out / opt_in
    source: str  # keyword / api
    actor: str | None
    detail: str | None
    at: datetime


_EVENT_COLUMNS = [consent_events.c[name] for name in ConsentEventRecord.__slots__]


@dataclass(frozen=True, slots=True)
class ConsentChange:
    contact: ContactRecord  # as it is after the call
    changed: bool  # False: it already was in that state (nothing written)


class ConsentRepository:
    async def set(
        self,
        conn: AsyncConnection,
        contact: ContactRecord,
        *,
        opted_out: bool,
        source: str,
        actor: str | None = None,
        detail: str | None = None,
        at: datetime | None = None,
    ) -> ConsentChange:
        """Opt `contact` out (`opted_out=True`) or in, recording how and by whom; a no-op when already so.

        `contact` is the caller's snapshot; the row is re-read under the write (the state may have changed
        since), so two concurrent opt-outs record one change."""
        at = as_utc(at) if at is not None else utcnow()
        stmt = (
            update(contacts)
            .where(contacts.c.id == contact.id, contacts.c.opted_out.is_(not opted_out))
            .values(opted_out=opted_out, opted_out_at=at if opted_out else None, updated_at=utcnow())
            .returning(*_CONTACT_COLUMNS)
        )
        row = (await conn.execute(stmt)).first()
        if row is None:  # already in that state (or no such contact): the current row, unchanged
            current = (await conn.execute(select(*_CONTACT_COLUMNS).where(contacts.c.id == contact.id))).first()
            return ConsentChange(_record(current) if current is not None else contact, changed=False)
        updated = _record(row)
        await conn.execute(
            consent_events.insert().values(
                phone_number_id=updated.phone_number_id, contact_id=updated.id, contact_key=updated.contact_key,
                action=OPT_OUT if opted_out else OPT_IN, source=source, actor=actor, detail=detail, at=at,
            )
        )
        return ConsentChange(updated, changed=True)

    async def history(
        self, conn: AsyncConnection, contact_id: int, *, limit: int = 100
    ) -> list[ConsentEventRecord]:
        """The contact's consent changes, newest first (an index range of `ix_consent_events_contact_id_id`)."""
        stmt = (
            select(*_EVENT_COLUMNS)
            .where(consent_events.c.contact_id == contact_id)
            .order_by(consent_events.c.id.desc())
            .limit(limit)
        )
        return [ConsentEventRecord(*row) for row in await conn.execute(stmt)]
