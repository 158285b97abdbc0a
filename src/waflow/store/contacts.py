"""Contacts: who wrote to which business number, and when last (the 24 h customer-service window).

One person, one contact. A person is known by a phone number (`wa_id`) and, since 2026, by a
business-scoped user id (`user_id`, BSUID), in any order and combination. A contact row is
filed under `contact_key` (its `wa_id`, else its `user_id`, when it was created), which every
other table refers to; the key never changes, and events and messages of a contact are filed
under it. The identity rule, applied in the writer's transaction:

- **`user_id` is the person, `wa_id` is their current number.** A message carrying a `user_id`
  belongs to the row holding that `user_id`; one without belongs to the row holding its `wa_id`.
- **Linking**: a row that lacks an id the message carries gets it, when no other row holds it.
- **Merging**: when the message's ids are held by two rows and the row holding the `wa_id` has no
  `user_id` of its own (the person wrote first by number, later by BSUID, or the other way
  round), the two rows are one person: the row created first survives (its `contact_key` is the
  one other systems saw longest) and the other becomes an *alias*: `merged_into` names the
  survivor, its ids move to the survivor, and its key still resolves (`get`) to the survivor.
  What the alias had moves too, in the same transaction: its window (`last_inbound_at` = the
  later of the two), its opt-out (the survivor is opted out if either was: consent errs on the
  side of not messaging), its sessions (when both had an active conversation, the alias's ends
  with reason `merged`; otherwise it continues on the survivor), and its history (inbound
  events, outbound messages and timers are re-filed under the survivor's key, in id order,
  so per-recipient order is kept).
- **A number that changed hands**: when the row holding the `wa_id` already has a *different*
  `user_id`, the number now belongs to this message's person: it moves to them (the old row
  keeps its key and history but no `wa_id`); a person seen for the first time that way gets a
  row of their own (filed under the `user_id` when the number is taken as a key).

Every lookup is an index search: one per id kind (`contact_key`, `wa_id`, `user_id` each have a
unique index per number), combined with UNION ALL, never an OR that a planner turns into a scan.
The webhook writer resolves a whole batch with `upsert_many`: one lookup statement, one insert
and one update per batch; only the rare rows that need a link across rows, a merge or a move
take the per-contact path (`upsert_from_inbound`). On PostgreSQL every writer of contact
identities first takes transaction-scoped advisory locks on the ids it touches (in one
statement, in hash order), so two concurrent webhooks of one new person cannot create two rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, bindparam, case, func, literal, select, union_all, update
from sqlalchemy.ext.asyncio import AsyncConnection

from waflow.canonical import ContactRef
from waflow.store.dialect import LOCK_CLASS_CONTACT, const, insert, is_postgres, lock_keys
from waflow.store.tables import consent_events, contacts, inbound_events, outbound_messages, sessions, timers
from waflow.store.types import UTCDateTime, as_utc, utcnow

SERVICE_WINDOW = timedelta(hours=24)
MERGED = "merged"  # end_reason of an alias's conversation ended by a merge


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
    merged_into: int | None = None
    opted_out_at: datetime | None = None  # when the current opt-out was recorded (revision 0008)

    def window_open(self, now: datetime | None = None) -> bool:
        return window_open_at(self.last_inbound_at, now or utcnow())


_COLUMNS = [contacts.c[name] for name in ContactRecord.__slots__]
# how a lookup found a row; a contact_key match wins over a wa_id match, which wins over a user_id match
_BY_KEY, _BY_WA, _BY_USER = 0, 1, 2
_CHUNK = 500  # ids per IN list (well under every driver's parameter limit)


def _record(row: Any) -> ContactRecord:
    return ContactRecord(**{name: row._mapping[name] for name in ContactRecord.__slots__})


def _identity_locks(phone_number_id: str, ref: ContactRef) -> list[str]:
    keys = [f"{phone_number_id}\x1fk\x1f{ref.key}"]
    if ref.wa_id:
        keys.append(f"{phone_number_id}\x1fw\x1f{ref.wa_id}")
    if ref.user_id:
        keys.append(f"{phone_number_id}\x1fu\x1f{ref.user_id}")
    return keys


def _lookups(
    phone_number_id: str, keys: Sequence[str], wa_ids: Sequence[str], user_ids: Sequence[str]
) -> Iterator[Any]:
    """Statements finding the rows holding any of the keys / wa_ids / user_ids: one UNION ALL of at most three
    index searches (one per id kind) per `_CHUNK` ids, so that a campaign's worth of keys stays well within
    every database's limits on parameters and compound terms."""
    for start in range(0, max(len(keys), len(wa_ids), len(user_ids)), _CHUNK):
        branches: list[Select[Any]] = []
        for via, column, values in (
            (_BY_KEY, contacts.c.contact_key, keys),
            (_BY_WA, contacts.c.wa_id, wa_ids),
            (_BY_USER, contacts.c.user_id, user_ids),
        ):
            chunk = list(values[start : start + _CHUNK])
            if not chunk:
                continue
            where = column == chunk[0] if len(chunk) == 1 else column.in_(chunk)
            branches.append(
                select(literal(via).label("via"), *_COLUMNS).where(contacts.c.phone_number_id == phone_number_id, where)
            )
        yield branches[0] if len(branches) == 1 else union_all(*branches)


@dataclass(slots=True)
class _Found:
    """What a lookup found, by id kind (aliases already resolved to their survivors)."""

    by_key: dict[str, ContactRecord]
    by_wa: dict[str, ContactRecord]
    by_user: dict[str, ContactRecord]


async def _find(
    conn: AsyncConnection, phone_number_id: str, keys: Iterable[str], wa_ids: Iterable[str], user_ids: Iterable[str]
) -> _Found:
    found = _Found({}, {}, {})
    k, w, u = sorted(set(keys)), sorted(set(wa_ids)), sorted(set(user_ids))
    if not (k or w or u):
        return found
    aliases: dict[str, int] = {}
    rows = [row for stmt in _lookups(phone_number_id, k, w, u) for row in await conn.execute(stmt)]
    for row in rows:
        record = _record(row)
        if row.via == _BY_KEY:
            if record.merged_into is not None:
                aliases[record.contact_key] = record.merged_into
            else:
                found.by_key[record.contact_key] = record
        elif row.via == _BY_WA and record.wa_id is not None:
            found.by_wa[record.wa_id] = record
        elif row.via == _BY_USER and record.user_id is not None:
            found.by_user[record.user_id] = record
    if aliases:
        survivors = await _by_ids(conn, set(aliases.values()))
        for key, survivor_id in aliases.items():
            if survivor_id in survivors:
                found.by_key[key] = survivors[survivor_id]
    return found


async def _by_ids(conn: AsyncConnection, ids: Iterable[int], *, lock: bool = False) -> dict[int, ContactRecord]:
    wanted = sorted(set(ids))
    out: dict[int, ContactRecord] = {}
    for start in range(0, len(wanted), _CHUNK):
        stmt = select(*_COLUMNS).where(contacts.c.id.in_(wanted[start : start + _CHUNK]))
        if lock and is_postgres(conn):
            stmt = stmt.with_for_update()
        out.update((r.id, r) for r in map(_record, await conn.execute(stmt)))
    return out


def _resolve(found: _Found, key: str) -> ContactRecord | None:
    """The contact a key given from outside (a contact_key, a wa_id or a user_id) names."""
    return found.by_key.get(key) or found.by_wa.get(key) or found.by_user.get(key)


def _plain_match(found: _Found, ref: ContactRef) -> tuple[bool, ContactRecord | None]:
    """(simple, row): `simple` when the ref needs no link across rows, merge or move — `row` is then its
    contact (None: a new person). Anything else goes to `upsert_from_inbound`'s full rule."""
    rows = {r.id: r for r in (found.by_key.get(ref.key), ref.wa_id and found.by_wa.get(ref.wa_id),
                              ref.user_id and found.by_user.get(ref.user_id)) if r}  # fmt: skip
    if not rows:
        return True, None
    if len(rows) > 1:
        return False, None
    [row] = rows.values()
    if ref.wa_id and row.wa_id != ref.wa_id:
        return False, None  # the row lacks the number or holds another (linking must check other rows)
    if ref.user_id and row.user_id not in (None, ref.user_id):
        return False, None  # the number is held by another person
    return True, row


@dataclass(frozen=True, slots=True)
class _Change:
    ref_key: str
    contact: ContactRecord
    profile_name: str | None
    at: datetime | None
    user_id: str | None


_UPDATE_SEEN = (
    update(contacts)
    .where(contacts.c.id == bindparam("b_id"))
    .values(
        profile_name=func.coalesce(bindparam("v_name", type_=contacts.c.profile_name.type), contacts.c.profile_name),
        # moves forward only: a concurrent writer's later time is never overwritten
        last_inbound_at=case(
            (
                contacts.c.last_inbound_at.is_(None)
                | (contacts.c.last_inbound_at < bindparam("v_at", type_=UTCDateTime())),
                bindparam("v_at", type_=UTCDateTime()),
            ),
            else_=contacts.c.last_inbound_at,
        ),
        user_id=func.coalesce(contacts.c.user_id, bindparam("v_user", type_=contacts.c.user_id.type)),
        updated_at=bindparam("v_now", type_=UTCDateTime()),
    )
)


def _needs_update(row: ContactRecord, ref: ContactRef, at: datetime | None) -> bool:
    return bool(
        (ref.profile_name and ref.profile_name != row.profile_name)
        or (at is not None and (row.last_inbound_at is None or at > row.last_inbound_at))
        or (ref.user_id and row.user_id is None)
    )


class ContactRepository:
    # ---- reading -------------------------------------------------------------------------------------------

    async def get(self, conn: AsyncConnection, phone_number_id: str, contact_key: str) -> ContactRecord | None:
        """The contact filed under `contact_key`, or holding it as its wa_id / user_id (an alias resolves to
        the contact it was merged into)."""
        found = await _find(conn, phone_number_id, [contact_key], [contact_key], [contact_key])
        return _resolve(found, contact_key)

    async def find_many(
        self, conn: AsyncConnection, phone_number_id: str, keys: Iterable[str]
    ) -> dict[str, ContactRecord]:
        """`get` for many keys in one statement; keys that name no contact are absent."""
        wanted = sorted(set(keys))
        found = await _find(conn, phone_number_id, wanted, wanted, wanted)
        out: dict[str, ContactRecord] = {}
        for key in wanted:
            contact = _resolve(found, key)
            if contact is not None:
                out[key] = contact
        return out

    async def get_by_id(self, conn: AsyncConnection, contact_id: int) -> ContactRecord | None:
        row = (await conn.execute(select(*_COLUMNS).where(contacts.c.id == contact_id))).first()
        return _record(row) if row else None

    async def window_open(
        self, conn: AsyncConnection, phone_number_id: str, contact_key: str, now: datetime | None = None
    ) -> bool:
        """Whether the contact wrote to `phone_number_id` less than 24 h before `now`."""
        contact = await self.get(conn, phone_number_id, contact_key)
        return contact is not None and contact.window_open(now)

    # ---- writing -------------------------------------------------------------------------------------------

    async def upsert_many(
        self, conn: AsyncConnection, seen: Sequence[tuple[str, ContactRef, datetime | None]]
    ) -> dict[tuple[str, str], ContactRecord]:
        """Create or refresh the contacts of a batch of inbound messages: (phone_number_id, ref, message time).

        Returns the contact of each (phone_number_id, ref.key). One lookup statement, one insert and one
        update per number and batch; refs that need the full identity rule (a link across rows, a merge,
        a number that changed hands) or that share an id with another ref of the batch go one by one
        through `upsert_from_inbound`, after the rest.
        """
        out: dict[tuple[str, str], ContactRecord] = {}
        by_number: dict[str, list[tuple[ContactRef, datetime | None]]] = {}
        for pnid, ref, at in seen:
            by_number.setdefault(pnid, []).append((ref, as_utc(at) if at is not None else None))
        for pnid, items in by_number.items():
            out.update(await self._upsert_number(conn, pnid, items))
        return out

    async def _upsert_number(
        self, conn: AsyncConnection, pnid: str, items: list[tuple[ContactRef, datetime | None]]
    ) -> dict[tuple[str, str], ContactRecord]:
        await lock_keys(conn, LOCK_CLASS_CONTACT, (k for ref, _ in items for k in _identity_locks(pnid, ref)))
        found = await _find(
            conn,
            pnid,
            [ref.key for ref, _ in items],
            [ref.wa_id for ref, _ in items if ref.wa_id],
            [ref.user_id for ref, _ in items if ref.user_id],
        )
        # an id shared by two refs of the batch (one person, two spellings) is for the full rule
        uses: dict[str, int] = {}
        for ref, _ in items:
            for ident in {ref.key, ref.wa_id, ref.user_id} - {None}:
                uses[str(ident)] = uses.get(str(ident), 0) + 1
        out: dict[tuple[str, str], ContactRecord] = {}
        slow: list[tuple[ContactRef, datetime | None]] = []
        new: list[tuple[ContactRef, datetime | None]] = []
        changes: list[_Change] = []
        for ref, at in items:
            simple, row = _plain_match(found, ref)
            if not simple or any(uses[str(i)] > 1 for i in {ref.key, ref.wa_id, ref.user_id} - {None}):
                slow.append((ref, at))
            elif row is None:
                new.append((ref, at))
            else:
                out[(pnid, ref.key)] = row
                if _needs_update(row, ref, at):
                    changes.append(_Change(ref.key, row, ref.profile_name, at, ref.user_id))
        if new:
            inserted = await self._insert_new(conn, pnid, new)
            for ref, at in new:
                if ref.key in inserted:
                    out[(pnid, ref.key)] = inserted[ref.key]
                else:  # taken meanwhile by a writer that did not lock (cannot happen on SQLite)
                    slow.append((ref, at))
        if changes:
            now = utcnow()
            await conn.execute(
                _UPDATE_SEEN,
                [
                    {"b_id": c.contact.id, "v_name": c.profile_name, "v_at": c.at, "v_user": c.user_id, "v_now": now}
                    for c in changes
                ],
            )
            for c in changes:
                out[(pnid, c.ref_key)] = _refreshed(c, now)
        for ref, at in slow:
            out[(pnid, ref.key)] = await self.upsert_from_inbound(conn, pnid, ref, at, locked=True)
        return out

    async def _insert_new(
        self, conn: AsyncConnection, pnid: str, new: list[tuple[ContactRef, datetime | None]]
    ) -> dict[str, ContactRecord]:
        now = utcnow()
        stmt = (
            insert(conn, contacts)
            .values(
                [
                    {
                        "phone_number_id": pnid,
                        "contact_key": ref.key,
                        "wa_id": ref.wa_id,
                        "user_id": ref.user_id,
                        "profile_name": ref.profile_name,
                        "last_inbound_at": at,
                        "opted_out": False,
                        "created_at": now,
                        "updated_at": now,
                    }
                    for ref, at in new
                ]
            )
            .on_conflict_do_nothing()
            .returning(*_COLUMNS)
        )
        return {r.contact_key: r for r in map(_record, await conn.execute(stmt))}

    async def upsert_from_inbound(
        self,
        conn: AsyncConnection,
        phone_number_id: str,
        ref: ContactRef,
        at: datetime | None = None,
        *,
        locked: bool = False,
    ) -> ContactRecord:
        """Create or refresh the contact `ref` of `phone_number_id`, seen at `at` (the message time), by the
        full identity rule of this module (link, merge, move a number).

        Updates the profile name when one is given and moves `last_inbound_at` forward only.
        """
        at = as_utc(at) if at is not None else None
        if not locked:
            await lock_keys(conn, LOCK_CLASS_CONTACT, _identity_locks(phone_number_id, ref))
        found = await _find(
            conn, phone_number_id, [ref.key], [ref.wa_id] if ref.wa_id else [], [ref.user_id] if ref.user_id else []
        )
        by_user = found.by_user.get(ref.user_id) if ref.user_id else None
        by_wa = found.by_wa.get(ref.wa_id) if ref.wa_id else None
        person = by_user or by_wa
        keyed = found.by_key.get(ref.key)
        if person is None and keyed is not None and (not ref.user_id or keyed.user_id in (None, ref.user_id)):
            person = keyed  # filed under this id (or an alias of it) though no row holds it now: still them
        if person is None:
            return await self._create(conn, phone_number_id, ref, at)
        if by_user is not None and by_wa is not None and by_wa.id != by_user.id:
            if by_wa.user_id is None:  # the same person, known by number and by BSUID: one contact
                person = await self._merge(conn, by_user, by_wa)
            else:  # the number moved from another person to this one
                await self._drop_number(conn, by_wa)
        elif by_user is None and by_wa is not None and ref.user_id and by_wa.user_id not in (None, ref.user_id):
            # the number now belongs to a person never seen before: it moves to a row of their own
            await self._drop_number(conn, by_wa)
            return await self._create(conn, phone_number_id, ref, at)
        return await self._refresh(conn, person, ref, at)

    async def _create(
        self, conn: AsyncConnection, phone_number_id: str, ref: ContactRef, at: datetime | None
    ) -> ContactRecord:
        key = await self._free_key(conn, phone_number_id, ref)
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
            .returning(*_COLUMNS)
        )
        return _record((await conn.execute(stmt)).one())

    async def _free_key(self, conn: AsyncConnection, phone_number_id: str, ref: ContactRef) -> str:
        """The ref's key, else its other id, else `<key>~<n>`: the first no row is filed under (a key whose
        row lost its ids stays that row's)."""
        candidates = [k for k in (ref.key, ref.user_id, ref.wa_id) if k]
        taken = await _find(conn, phone_number_id, candidates, [], [])
        for key in candidates:
            if key not in taken.by_key:
                return key
        n = 1
        while True:
            key = f"{ref.key}~{n}"
            if key not in (await _find(conn, phone_number_id, [key], [], [])).by_key:
                return key
            n += 1

    async def _drop_number(self, conn: AsyncConnection, row: ContactRecord) -> None:
        await conn.execute(update(contacts).where(contacts.c.id == row.id).values(wa_id=None, updated_at=utcnow()))

    async def _refresh(
        self, conn: AsyncConnection, row: ContactRecord, ref: ContactRef, at: datetime | None
    ) -> ContactRecord:
        values: dict[str, Any] = {}
        if ref.profile_name and ref.profile_name != row.profile_name:
            values["profile_name"] = ref.profile_name
        if at is not None and (row.last_inbound_at is None or at > row.last_inbound_at):
            values["last_inbound_at"] = at
        if ref.wa_id and row.wa_id != ref.wa_id:
            values["wa_id"] = ref.wa_id  # linked, or the person's new number (no other row holds it now)
        if ref.user_id and row.user_id is None:
            values["user_id"] = ref.user_id
        if not values:
            return row
        values["updated_at"] = utcnow()
        stmt = update(contacts).where(contacts.c.id == row.id).values(**values).returning(*_COLUMNS)
        return _record((await conn.execute(stmt)).one())

    async def _merge(self, conn: AsyncConnection, a: ContactRecord, b: ContactRecord) -> ContactRecord:
        """Merge two rows of one person (see the module docstring); the survivor, refreshed."""
        rows = await _by_ids(conn, (a.id, b.id), lock=True)
        survivor, alias = sorted(rows.values(), key=lambda r: r.id)
        now = utcnow()
        pnid = survivor.phone_number_id
        # the alias's ids first: each is unique per number
        await conn.execute(
            update(contacts)
            .where(contacts.c.id == alias.id)
            .values(wa_id=None, user_id=None, merged_into=survivor.id, updated_at=now)
        )
        await conn.execute(  # aliases of the alias now name the survivor: no chains
            update(contacts)
            .where(contacts.c.merged_into == alias.id)
            .values(merged_into=survivor.id, updated_at=now)
        )
        last = max((t for t in (survivor.last_inbound_at, alias.last_inbound_at) if t is not None), default=None)
        merged = await conn.execute(
            update(contacts)
            .where(contacts.c.id == survivor.id)
            .values(
                wa_id=survivor.wa_id or alias.wa_id,
                user_id=survivor.user_id or alias.user_id,
                profile_name=survivor.profile_name or alias.profile_name,
                last_inbound_at=last,
                opted_out=survivor.opted_out or alias.opted_out,
                # the later opt-out: only what the person wrote after both counts as a new conversation
                opted_out_at=max(
                    (r.opted_out_at or r.updated_at for r in (survivor, alias) if r.opted_out), default=None
                ),
                updated_at=now,
            )
            .returning(*_COLUMNS)
        )
        result = _record(merged.one())
        await self._move_history(conn, pnid, alias, survivor, now)
        await conn.execute(  # the alias's consent history (revision 0008) becomes the survivor's
            update(consent_events).where(consent_events.c.contact_id == alias.id).values(contact_id=survivor.id)
        )
        return result

    async def _move_history(
        self, conn: AsyncConnection, pnid: str, alias: ContactRecord, survivor: ContactRecord, now: datetime
    ) -> None:
        s = sessions
        both_active = (
            select(s.c.id)
            .where(s.c.contact_id == survivor.id, s.c.state != const("ended"))
            .limit(1)
        )
        if (await conn.execute(both_active)).first() is not None:
            await conn.execute(
                update(s)
                .where(s.c.contact_id == alias.id, s.c.state != const("ended"))
                .values(state="ended", ended_at=now, end_reason=MERGED, updated_at=now)
            )
        alias_sessions = select(s.c.id).where(s.c.contact_id == alias.id).scalar_subquery()
        await conn.execute(
            update(timers).where(timers.c.session_id.in_(alias_sessions)).values(contact_key=survivor.contact_key)
        )
        await conn.execute(update(s).where(s.c.contact_id == alias.id).values(contact_id=survivor.id))
        for table in (inbound_events, outbound_messages):
            await conn.execute(
                update(table)
                .where(table.c.phone_number_id == pnid, table.c.contact_key == alias.contact_key)
                .values(contact_key=survivor.contact_key)
            )


def _refreshed(change: _Change, now: datetime) -> ContactRecord:
    row, at = change.contact, change.at
    return replace(
        row,
        profile_name=change.profile_name or row.profile_name,
        last_inbound_at=at if at is not None and (row.last_inbound_at is None or at > row.last_inbound_at)
        else row.last_inbound_at,
        user_id=row.user_id or change.user_id,
        updated_at=now,
    )
