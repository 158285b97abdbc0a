"""Contacts: who wrote to which business number, and when last (the 24 h customer-service window).

A contact is filed under `contact_key` = its `wa_id`, else its business-scoped `user_id`
(`ContactRef.key`). When a contact first known by one id later arrives with both, the ids are
linked on the existing row and its `contact_key` stays what it was (other rows refer to it);
lookups (`get`) therefore match a key against `contact_key`, `wa_id` and `user_id`. Two existing
rows are never merged.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from waflow.canonical import ContactRef
from waflow.store.dialect import insert, locking
from waflow.store.tables import contacts
from waflow.store.types import as_utc, utcnow

SERVICE_WINDOW = timedelta(hours=24)


def window_open_at(last_inbound_at: datetime | None, now: datetime) -> bool:
    """Whether the 24 h customer-service window opened by the last inbound message is open at `now`."""
    return last_inbound_at is not None and as_utc(now) - last_inbound_at < SERVICE_WINDOW


@dataclass(frozen=True, slots=True)
class ContactRecord:
    id: int
    phone_number_id: str
    contact_key: str
    wa_id: str | None
    user_id: str | None
    profile_name: str | None
    last_inbound_at: datetime | None
    opted_out: bool
    created_at: datetime
    updated_at: datetime

    def window_open(self, now: datetime | None = None) -> bool:
        return window_open_at(self.last_inbound_at, now or utcnow())


_COLUMNS = [contacts.c[name] for name in ContactRecord.__slots__]


def _record(row: Any) -> ContactRecord:
    return ContactRecord(**row._mapping)


def _best(rows: list[ContactRecord], key: str, ref: ContactRef) -> ContactRecord:
    for row in rows:
        if row.contact_key == key:
            return row
    for row in rows:
        if ref.wa_id and row.wa_id == ref.wa_id:
            return row
    return rows[0]


class ContactRepository:
    async def upsert_from_inbound(
        self, conn: AsyncConnection, phone_number_id: str, ref: ContactRef, at: datetime | None = None
    ) -> ContactRecord:
        """Create or refresh the contact `ref` of `phone_number_id`, seen at `at` (the message time).

        Updates the profile name when one is given, moves `last_inbound_at` forward only, and
        links `wa_id` / `user_id` when the row lacks one and no other contact holds it.
        """
        key = ref.key
        at = as_utc(at) if at is not None else None
        for _ in range(3):
            rows = await self._matching(conn, phone_number_id, key, ref, lock=True)
            if rows:
                return await self._refresh(conn, _best(rows, key, ref), rows, ref, at)
            now = utcnow()
            stmt = (
                insert(conn, contacts)
                .values(
                    phone_number_id=phone_number_id,
                    contact_key=key,
                    wa_id=ref.wa_id,
                    user_id=ref.user_id,
                    profile_name=ref.profile_name,
                    last_inbound_at=at,
                    opted_out=False,
                    created_at=now,
                    updated_at=now,
                )
                .on_conflict_do_nothing()
                .returning(*_COLUMNS)
            )
            row = (await conn.execute(stmt)).first()
            if row is not None:
                return _record(row)
            # another transaction created it meanwhile: read it and refresh
        raise RuntimeError(f"could not upsert contact {key!r} of {phone_number_id!r}")

    async def _matching(
        self, conn: AsyncConnection, phone_number_id: str, key: str, ref: ContactRef, *, lock: bool = False
    ) -> list[ContactRecord]:
        match: list[ColumnElement[bool]] = [contacts.c.contact_key == key]
        if ref.wa_id:
            match.append(contacts.c.wa_id == ref.wa_id)
        if ref.user_id:
            match.append(contacts.c.user_id == ref.user_id)
        stmt = select(*_COLUMNS).where(contacts.c.phone_number_id == phone_number_id, or_(*match))
        stmt = stmt.order_by(contacts.c.id)
        if lock:
            stmt = locking(conn, stmt)
        return [_record(row) for row in await conn.execute(stmt)]

    async def _refresh(
        self,
        conn: AsyncConnection,
        row: ContactRecord,
        rows: list[ContactRecord],
        ref: ContactRef,
        at: datetime | None,
    ) -> ContactRecord:
        values: dict[str, Any] = {}
        if ref.profile_name and ref.profile_name != row.profile_name:
            values["profile_name"] = ref.profile_name
        if at is not None and (row.last_inbound_at is None or at > row.last_inbound_at):
            values["last_inbound_at"] = at
        others = [other for other in rows if other.id != row.id]
        if ref.wa_id and row.wa_id is None and all(other.wa_id != ref.wa_id for other in others):
            values["wa_id"] = ref.wa_id
        if ref.user_id and row.user_id is None and all(other.user_id != ref.user_id for other in others):
            values["user_id"] = ref.user_id
        if not values:
            return row
        values["updated_at"] = utcnow()
        stmt = update(contacts).where(contacts.c.id == row.id).values(**values).returning(*_COLUMNS)
        return _record((await conn.execute(stmt)).one())

    async def get(self, conn: AsyncConnection, phone_number_id: str, contact_key: str) -> ContactRecord | None:
        """The contact filed under `contact_key`, or holding it as its wa_id / user_id."""
        stmt = select(*_COLUMNS).where(
            contacts.c.phone_number_id == phone_number_id,
            or_(
                contacts.c.contact_key == contact_key,
                contacts.c.wa_id == contact_key,
                contacts.c.user_id == contact_key,
            ),
        )
        rows = [_record(row) for row in await conn.execute(stmt)]
        if not rows:
            return None
        return _best(rows, contact_key, ContactRef(wa_id=contact_key))

    async def get_by_id(self, conn: AsyncConnection, contact_id: int) -> ContactRecord | None:
        row = (await conn.execute(select(*_COLUMNS).where(contacts.c.id == contact_id))).first()
        return _record(row) if row else None

    async def window_open(
        self, conn: AsyncConnection, phone_number_id: str, contact_key: str, now: datetime | None = None
    ) -> bool:
        """Whether the contact wrote to `phone_number_id` less than 24 h before `now`."""
        contact = await self.get(conn, phone_number_id, contact_key)
        return contact is not None and contact.window_open(now)

    async def set_opted_out(self, conn: AsyncConnection, contact_id: int, opted_out: bool) -> None:
        await conn.execute(
            update(contacts).where(contacts.c.id == contact_id).values(opted_out=opted_out, updated_at=utcnow())
        )
