"""Finding and locking the contact an event belongs to (the per-contact serialisation point)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from waflow.canonical import InboundMessage
from waflow.store.contacts import ContactRecord, ContactRepository
from waflow.store.dialect import is_postgres
from waflow.store.tables import contacts

_COLUMNS = [contacts.c[name] for name in ContactRecord.__slots__]
repo = ContactRepository()


class ContactBusy(Exception):
    """Another worker holds the contact (PostgreSQL, SKIP LOCKED)."""


def _record(row: Any) -> ContactRecord:
    return ContactRecord(**row._mapping)


async def lock_contact(
    conn: AsyncConnection, phone_number_id: str, contact_key: str, *, skip_locked: bool, message: InboundMessage | None
) -> ContactRecord | None:
    """The contact row, locked FOR UPDATE on PostgreSQL (`ContactBusy` when `skip_locked` and taken).

    None when there is no such contact and the event carries no message to create it from.
    """
    # an alias (a contact merged into another) is not locked itself: `repo.get` below resolves it
    stmt = select(*_COLUMNS).where(
        contacts.c.phone_number_id == phone_number_id,
        contacts.c.contact_key == contact_key,
        contacts.c.merged_into.is_(None),
    )
    pg = is_postgres(conn)
    if pg:
        stmt = stmt.with_for_update(skip_locked=skip_locked)
    row = (await conn.execute(stmt)).first()
    if row is not None:
        return _record(row)
    if pg and skip_locked:
        plain = select(contacts.c.id).where(
            contacts.c.phone_number_id == phone_number_id, contacts.c.contact_key == contact_key
        )
        if (await conn.execute(plain)).first() is not None:
            raise ContactBusy(contact_key)
    found = await repo.get(conn, phone_number_id, contact_key)  # filed under another of its ids
    if found is not None:
        if pg:
            await conn.execute(select(contacts.c.id).where(contacts.c.id == found.id).with_for_update())
        return found
    if message is not None:
        return await repo.upsert_from_inbound(conn, phone_number_id, message.contact, message.timestamp)
    return None


async def lock_contact_id(conn: AsyncConnection, contact_id: int) -> ContactRecord | None:
    stmt = select(*_COLUMNS).where(contacts.c.id == contact_id)
    if is_postgres(conn):
        stmt = stmt.with_for_update()
    row = (await conn.execute(stmt)).first()
    return _record(row) if row else None
