"""The outbox: outbound messages, durable, leaving each recipient in id order.

Rows start `queued` with a `due_at`; the dispatcher (package `waflow.outbox`) claims them with a
lease (`claimed_by`, `claimed_until`), records each try in `send_attempts`, and ends a try with
`record_accepted` (the provider's message id) or `record_failed`. A send whose outcome is not
known (timeout, crash) stays `queued` with `outcome_unknown_since` set: the status webhooks carry
`wf:<outbox id>` as callback data and reconcile it (see `statuses`) instead of a resend.

Per-recipient order: the head of a recipient's queue is its lowest `id` with status `queued`
(index `ix_outbound_messages_queued_by_recipient`); a dispatcher sends a row only when it is that
head and due, so a retrying message holds back the ones written after it. Triggers (revision 0006)
keep the head marked (`queue_head`), and count the rows per number, status and waiting reason
(`outbound_counts`) and per campaign and status (`campaign_counts`): the claim walks only the due
heads, and no count reads the outbox itself.

Priorities (`claim_due`): replies before bulk. A claim first takes the due heads of no campaign (a flow's
replies, API and agent sends; earliest due first), and gives only the rest of its limit to the running
campaigns, round-robin among them (one head from each in turn, the turn carried over to the next claim),
so a reply queued behind a 100k-recipient campaign waits for a claim, not for the campaign, and campaigns
started together advance together. Order within one recipient is untouched: only heads are claimed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import bindparam, case, exists, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from waflow.canonical import DeliveryStatus, OutboundMessage
from waflow.store.bulk import BulkInsert
from waflow.store.contacts import ContactRecord, ContactRepository
from waflow.store.dialect import LOCK_CLASS_WAMID, const, is_postgres, lock_keys
from waflow.store.statuses import (
    AppliedResult,
    Classifier,
    StatusEventRecord,
    StatusRepository,
    adopt_held,
    load_states,
    write_states,
)
from waflow.store.tables import campaigns, outbound_counts, outbound_messages, send_attempts
from waflow.store.transitions import MessageState
from waflow.store.types import UTCDateTime, as_utc, utcnow

_RELEASE_CLAIM = {"claimed_by": None, "claimed_until": None, "sending_since": None}
LOCK_CLASS_FOLD = 0x666C64  # "fld": one counter folder at a time (`fold_counters`)


@dataclass(frozen=True, slots=True)
class OutboundRecord:
    id: int
    phone_number_id: str
    contact_key: str
    to_number: str | None
    recipient_user_id: str | None
    type: str
    content: dict[str, Any]
    reply_to: str | None
    status: DeliveryStatus
    provider_message_id: str | None
    business_initiated: bool
    fallback_template: dict[str, Any] | None
    campaign_id: int | None
    session_id: int | None
    node_id: str | None
    due_at: datetime
    attempts: int
    claimed_by: str | None
    claimed_until: datetime | None
    outcome_unknown_since: datetime | None
    error_code: int | None
    error_class: str | None
    error_text: str | None
    created_at: datetime
    updated_at: datetime
    accepted_at: datetime | None
    sent_at: datetime | None
    delivered_at: datetime | None
    read_at: datetime | None
    played_at: datetime | None
    failed_at: datetime | None

    @classmethod
    def from_row(cls, row: Any) -> OutboundRecord:
        values = dict(row._mapping)
        values["status"] = DeliveryStatus(values["status"])
        return cls(**values)

    def to_message(self) -> OutboundMessage:
        return OutboundMessage(
            to=self.to_number,
            recipient=self.recipient_user_id,
            type=self.type,
            content=self.content,
            reply_to=self.reply_to,
        )


OUTBOUND_COLUMNS = [outbound_messages.c[name] for name in OutboundRecord.__slots__]


@dataclass(frozen=True, slots=True)
class SendAttemptRecord:
    id: int
    outbound_id: int
    attempt: int
    started_at: datetime
    finished_at: datetime | None
    outcome: str
    http_status: int | None
    error_code: int | None
    detail: str | None


_ATTEMPT_COLUMNS = [send_attempts.c[name] for name in SendAttemptRecord.__slots__]


@dataclass(frozen=True, slots=True)
class OutboundHistory:
    message: OutboundRecord
    attempts: list[SendAttemptRecord]
    statuses: list[StatusEventRecord]


# -- batched writes (the dispatcher's hot path) ---------------------------------------------------
#
# The dispatcher records hundreds of outcomes a second. Written one row at a time that was ~6
# statements per message, each a thread hop to aiosqlite (~3 ms of CPU per message, measured with
# cProfile under bench/outbox_dispatch.py). These take a whole batch and cost a fixed number of
# statements per batch, whatever its size.


@dataclass(frozen=True, slots=True)
class NewOutbound:
    """One row for `enqueue_many` (the arguments of `enqueue`)."""

    message: OutboundMessage
    contact_key: str
    business_initiated: bool
    fallback_template: dict[str, Any] | None = None
    session_id: int | None = None
    node_id: str | None = None
    campaign_id: int | None = None
    due_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class AttemptRow:
    """One send try for `record_attempts` (the arguments of `record_attempt`)."""

    outbound_id: int
    outcome: str  # accepted / error / unknown
    started_at: datetime
    finished_at: datetime | None = None
    http_status: int | None = None
    error_code: int | None = None
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class Acceptance:
    """`record_accepted_many`: the provider accepted `outbound_id` as `provider_message_id` at `at`."""

    outbound_id: int
    provider_message_id: str
    at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Failure:
    """`record_failed_many`: the send of `outbound_id` failed for good."""

    outbound_id: int
    code: int | None
    error_class: str | None
    text: str | None
    at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Release:
    """`release_many`: give a claimed row back, due again at `due_at` (the arguments of `release`)."""

    outbound_id: int
    due_at: datetime
    waiting_reason: str | None
    throttled: bool = False
    outcome_unknown_at: datetime | None = None
    error: tuple[int | None, str | None, str | None] | None = None


@dataclass(frozen=True, slots=True)
class AcceptedBatch:
    """What `record_accepted_many` did: held statuses applied, and the rows it left untouched."""

    results: list[AppliedResult]
    conflicts: dict[int, str]  # outbox id -> the other provider id it already has (row not written)
    missing: list[int]  # outbox ids with no row


_OUTBOUND_INSERT = BulkInsert(
    outbound_messages,
    [
        "phone_number_id",
        "contact_key",
        "to_number",
        "recipient_user_id",
        "type",
        "content",
        "reply_to",
        "status",
        "business_initiated",
        "fallback_template",
        "campaign_id",
        "session_id",
        "node_id",
        "due_at",
        "attempts",
        "created_at",
        "updated_at",
    ],
)
_ATTEMPT_INSERT = BulkInsert(
    send_attempts,
    ["outbound_id", "attempt", "started_at", "finished_at", "outcome", "http_status", "error_code", "detail"],
)


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()  # the engine's json_serializer: the same text `enqueue` stores


# -- dispatcher queries (revision 0002) -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClaimedRow:
    """An outbound row a dispatcher holds a lease on, with the dispatch fields of revision 0002."""

    record: OutboundRecord
    waiting_reason: str | None
    throttles: int
    fallback_used: bool


_CLAIM_EXTRA = [outbound_messages.c.waiting_reason, outbound_messages.c.throttles, outbound_messages.c.fallback_used]


_N_OUTBOUND = len(OUTBOUND_COLUMNS)
_STATUS_AT = OutboundRecord.__slots__.index("status")


def _claimed(row: Any) -> ClaimedRow:
    # positional (OUTBOUND_COLUMNS, then _CLAIM_EXTRA): building `row._mapping` per row cost more than the row
    values = list(row[:_N_OUTBOUND])
    values[_STATUS_AT] = DeliveryStatus(values[_STATUS_AT])
    waiting_reason, throttles, fallback_used = row[_N_OUTBOUND:]
    return ClaimedRow(OutboundRecord(*values), waiting_reason, throttles, bool(fallback_used))


_QUEUE_HEAD = text("outbound_messages.queue_head")

# PostgreSQL: share-lock the current head of each recipient's queue (see `enqueue_many`); LIMIT 2: two first rows
# enqueued at once may both be marked (revision 0006)
_LOCK_HEADS = text(
    "SELECT o.id FROM outbound_messages AS o WHERE o.id IN ("
    "SELECT h.id FROM unnest(CAST(:keys AS text[])) AS k(key) CROSS JOIN LATERAL ("
    "SELECT e.id FROM outbound_messages AS e WHERE e.phone_number_id = :pnid AND e.contact_key = k.key "
    "AND e.status = 'queued' AND e.queue_head ORDER BY e.id LIMIT 2) AS h) "
    "ORDER BY o.id FOR SHARE OF o"
)


def _earlier_queued() -> Any:
    """An earlier queued row of the same recipient exists (the row is not the head of its queue)."""
    earlier = outbound_messages.alias("earlier")
    return exists().where(
        earlier.c.phone_number_id == outbound_messages.c.phone_number_id,
        earlier.c.contact_key == outbound_messages.c.contact_key,
        earlier.c.status == const("queued"),
        earlier.c.id < outbound_messages.c.id,
    )


def _earlier_in_flight(now: datetime) -> Any:
    """An earlier row of the same recipient is still leased (a send in flight), whatever its status: a resend
    after an unknown outcome that a late status settled while its HTTP call runs leaves `queued`, and the next
    row must still wait for that call (a range of `ix_outbound_messages_in_flight`, revision 0010)."""
    earlier = outbound_messages.alias("in_flight")
    return exists().where(
        earlier.c.phone_number_id == outbound_messages.c.phone_number_id,
        earlier.c.contact_key == outbound_messages.c.contact_key,
        earlier.c.claimed_until.is_not(None),
        earlier.c.claimed_until > now,
        earlier.c.id < outbound_messages.c.id,
    )


Lane = tuple[str, int | None]  # (phone_number_id, campaign_id or None): one range of `ix_outbound_messages_claimable`


def _lane_pick(lane: Lane, now: datetime, limit: int) -> Any:
    """The first `limit` due, unleased heads of one lane in (due_at, id) order: a range of the claimable index
    read in order and stopped at the limit, whatever the length of the queues behind those heads."""
    o = outbound_messages
    number, campaign_id = lane
    cond: list[Any] = [
        o.c.status == const("queued"),
        # bare, as the partial index's WHERE has it: SQLite's `queue_head = 1` would not prove that WHERE
        _QUEUE_HEAD,
        o.c.phone_number_id == number,
        o.c.campaign_id.is_(None) if campaign_id is None else o.c.campaign_id == campaign_id,
        o.c.due_at <= now,
        o.c.claimed_by.is_(None),
    ]
    return select(o.c.id, o.c.due_at).where(*cond).order_by(o.c.due_at, o.c.id).limit(limit)


class DispatchQueries:
    """The dispatcher's claim/release statements (mixed into `OutboxRepository`)."""

    # The campaign the next claim's round-robin starts at (`_interleave`): where the previous claim of this
    # process stopped, so campaigns take turns across claims too. A hint of this process, not shared state:
    # another process keeps its own, and a stale or unknown id only moves where a turn starts.
    _campaign_turn: int = 0

    async def _lanes(self, conn: AsyncConnection, phone_number_ids: Sequence[str] | None) -> list[Lane]:
        """Where claimable rows can be: per number, its rows of no campaign, then those of each running campaign
        (in campaign id order).

        Rows of a paused (or finished) campaign are in no lane, so pausing costs one campaign row and the
        claim never reads past them. The numbers, when not given, are those with queued rows (the counters).
        """
        if phone_number_ids is None:
            c = outbound_counts
            stmt = (
                select(c.c.phone_number_id)
                .where(c.c.status == const("queued"))
                .group_by(c.c.phone_number_id)
                .having(func.sum(c.c.n) > 0)
            )
            numbers = sorted(str(n) for n in (await conn.execute(stmt)).scalars())
        else:
            numbers = sorted(set(phone_number_ids))
        if not numbers:
            return []
        running = select(campaigns.c.phone_number_id, campaigns.c.id).where(
            campaigns.c.status == const("running"), campaigns.c.phone_number_id.in_(numbers)
        )
        lanes: list[Lane] = [(number, None) for number in numbers]
        lanes += [(str(r[0]), int(r[1])) for r in await conn.execute(running.order_by(campaigns.c.id))]
        return lanes

    async def _pick(self, conn: AsyncConnection, lane: Lane, now: datetime, limit: int) -> list[tuple[datetime, int]]:
        """(due_at, id) of one lane's first `limit` claimable heads (`_lane_pick`); PostgreSQL: `FOR UPDATE SKIP
        LOCKED`, so concurrent dispatchers take disjoint rows (picked rows not leased stay locked only until this
        transaction ends)."""
        pick = _lane_pick(lane, now, limit)
        if is_postgres(conn):
            pick = pick.with_for_update(skip_locked=True, of=outbound_messages)
        return [(as_utc(r[1]), int(r[0])) for r in await conn.execute(pick)]

    async def _interleave(self, conn: AsyncConnection, lanes: Sequence[Lane], now: datetime, room: int) -> list[int]:
        """Up to `room` heads of the campaign `lanes`, taken from each lane in turn (round-robin), starting at
        `_campaign_turn`; each lane's own heads in (due_at, id) order.

        At most two index ranges per lane: each lane first gives its share (`room` / lanes, rounded up), and
        only when some lane had fewer than that do the lanes that gave their whole share give up to `room`
        (the deficit goes to the lanes that have more). Whichever lane is empty, the others fill the room.
        """
        start = next((i for i, lane in enumerate(lanes) if (lane[1] or 0) >= self._campaign_turn), 0)
        order = [*lanes[start:], *lanes[:start]]
        share = -(-room // len(order))
        heads = [await self._pick(conn, lane, now, share) for lane in order]
        if sum(map(len, heads)) < room:
            for i, lane in enumerate(order):
                if len(heads[i]) == share:
                    heads[i] = await self._pick(conn, lane, now, room)
        taken: list[int] = []
        last = -1
        depth = 0
        while len(taken) < room and any(depth < len(h) for h in heads):
            for i, lane_heads in enumerate(heads):
                if depth < len(lane_heads) and len(taken) < room:
                    taken.append(lane_heads[depth][1])
                    last = i
            depth += 1
        if last >= 0:  # the next claim starts with the lane after the last one served
            self._campaign_turn = order[(last + 1) % len(order)][1] or 0
        return taken

    async def any_due(
        self, conn: AsyncConnection, *, now: datetime | None = None, phone_number_ids: Sequence[str] | None = None
    ) -> bool:
        """Whether some row is claimable (a due, unleased head in a lane): a read that lets an idle dispatcher
        skip the write transaction of `claim_due` (on SQLite that would queue for the single write lock every
        poll). One indexed probe per lane."""
        now = now or utcnow()
        for lane in await self._lanes(conn, phone_number_ids):
            if (await conn.execute(_lane_pick(lane, now, 1))).first() is not None:
                return True
        return False

    async def oldest_due_at(self, conn: AsyncConnection, now: datetime | None = None) -> datetime | None:
        """The due time of the oldest claimable row (due, unleased, a queue head, in a running lane): how far
        sending is behind. One probe per lane, as `any_due`."""
        now = now or utcnow()
        found = [
            as_utc(row[1]) for lane in await self._lanes(conn, None)
            if (row := (await conn.execute(_lane_pick(lane, now, 1))).first()) is not None
        ]
        return min(found, default=None)

    async def claim_due(
        self,
        conn: AsyncConnection,
        claimer: str,
        *,
        limit: int,
        lease: timedelta,
        now: datetime | None = None,
        phone_number_ids: Sequence[str] | None = None,
    ) -> list[ClaimedRow]:
        """Lease up to `limit` due rows that are the head of their recipient's queue: replies before bulk.

        A row is claimable when it is `queued`, due, not leased, the lowest queued id of its
        (phone_number_id, contact_key) (`queue_head`), and not in a paused campaign. The rule:

        1. transactional rows (no campaign: a flow's replies, API sends, agents' replies) first: each
           number's lane of no campaign gives its first `limit` heads and the earliest `limit` of them all by
           (due_at, id) are taken;
        2. the rest of `limit` goes to the running campaigns' lanes round-robin (`_interleave`): one head
           from each lane in turn, not by due_at, so campaigns started together advance together, and the
           turn carries over to the next claim. A claim that transactional rows fill reads no campaign lane.

        Only queue heads are ever taken, and none while an earlier row of its recipient is still leased (a send
        in flight that a status settled meanwhile), so per-recipient order holds whatever the priority. The cost is at
        most (numbers + 2 x running campaigns) index ranges, each stopped at `limit`, never the queue's length.
        The rows come back in that priority order (replies first), the order the dispatcher hands them to its
        limiter. PostgreSQL: each lane's pick is `FOR UPDATE SKIP LOCKED`, so concurrent dispatchers take
        disjoint rows; SQLite: the write transaction is exclusive.
        """
        now = now or utcnow()
        if limit <= 0:
            return []
        o = outbound_messages
        lanes = await self._lanes(conn, phone_number_ids)
        candidates: list[tuple[datetime, int]] = []
        for lane in lanes:
            if lane[1] is None:
                candidates += await self._pick(conn, lane, now, limit)
        ids = [oid for _due, oid in sorted(candidates)[:limit]]
        bulk = [lane for lane in lanes if lane[1] is not None]
        if len(ids) < limit and bulk:
            ids += await self._interleave(conn, bulk, now, limit - len(ids))
        if not ids:
            return []
        rank = {oid: i for i, oid in enumerate(ids)}
        stmt = update(o).where(o.c.id.in_(sorted(ids)), ~_earlier_in_flight(now))
        if is_postgres(conn):
            # two first rows of an empty queue enqueued at once may both be marked (see revision 0006): take
            # only the one with no earlier queued row (one index probe each; SQLite has one writer, no race)
            stmt = stmt.where(~_earlier_queued())
        stmt = (
            stmt
            .values(claimed_by=claimer, claimed_until=now + lease, sending_since=None, updated_at=now)
            .returning(*OUTBOUND_COLUMNS, *_CLAIM_EXTRA)
        )
        rows = [_claimed(row) for row in await conn.execute(stmt)]
        rows.sort(key=lambda r: rank[r.record.id])
        return rows

    async def recover_expired(
        self, conn: AsyncConnection, *, grace: timedelta, now: datetime | None = None
    ) -> list[int]:
        """Rows whose lease expired: their dispatcher died (or stalled past its lease). A row it never started to
        send (no `sending_since`: `mark_sending` is the fence every send passes) is released as it was, due at
        once: nothing of it can have reached Meta. A row it may have sent is in flight with an unknown outcome:
        marked so (`outcome_unknown_since`), released, and due only after `grace`, leaving time for a status
        webhook (`wf:<id>`) to settle it first. Returns the ids of the rows with an unknown outcome."""
        now = now or utcnow()
        o = outbound_messages
        expired = (o.c.claimed_until.is_not(None), o.c.claimed_until < now)
        await conn.execute(
            update(o)
            .where(*expired, o.c.sending_since.is_(None))
            .values(claimed_by=None, claimed_until=None, updated_at=now)
        )
        stmt = (
            update(o)
            .where(*expired)
            .values(
                outcome_unknown_since=func.coalesce(o.c.outcome_unknown_since, o.c.sending_since),
                claimed_by=None,
                claimed_until=None,
                sending_since=None,
                due_at=now + grace,
                waiting_reason=_case_queued("unknown_outcome"),
                updated_at=now,
            )
            .returning(o.c.id, o.c.status)
        )
        return [int(r.id) for r in await conn.execute(stmt) if r.status == "queued"]

    async def mark_sending(
        self, conn: AsyncConnection, claimer: str, ids: Sequence[int], now: datetime | None = None
    ) -> set[int]:
        """The fence before a send: mark rows still leased to `claimer` as being sent (`sending_since`); the ids
        marked. A row whose lease another dispatcher took over (this one stalled past it) is not marked and must
        not be sent. From here until its outcome is recorded the row counts as maybe sent (`recover_expired`)."""
        if not ids:
            return set()
        now = now or utcnow()
        o = outbound_messages
        stmt = (
            update(o)
            .where(o.c.id.in_(sorted(ids)), o.c.claimed_by == claimer, o.c.claimed_until > now,
                   o.c.status == const("queued"))
            .values(sending_since=now)
            .returning(o.c.id)
        )
        return {int(r[0]) for r in await conn.execute(stmt)}

    async def renew_leases(
        self, conn: AsyncConnection, claimer: str, ids: Sequence[int], until: datetime
    ) -> int:
        """The heartbeat: extend the leases `claimer` still holds on `ids` (rows recorded meanwhile are left)."""
        if not ids:
            return 0
        o = outbound_messages
        result = await conn.execute(
            update(o).where(o.c.id.in_(sorted(ids)), o.c.claimed_by == claimer).values(claimed_until=until)
        )
        return int(result.rowcount or 0)

    async def release(
        self,
        conn: AsyncConnection,
        outbound_id: int,
        claimer: str,
        *,
        due_at: datetime,
        waiting_reason: str | None,
        throttled: bool = False,
        outcome_unknown_at: datetime | None = None,
        error: tuple[int | None, str | None, str | None] | None = None,
    ) -> bool:
        """Give a claimed row back, due again at `due_at`, saying why it waits. False when not ours any more."""
        o = outbound_messages
        values: dict[str, Any] = {
            "claimed_by": None,
            "claimed_until": None,
            "sending_since": None,
            "due_at": as_utc(due_at),
            "waiting_reason": waiting_reason,
            "updated_at": utcnow(),
        }
        if throttled:
            values["throttles"] = o.c.throttles + 1
        if outcome_unknown_at is not None:
            values["outcome_unknown_since"] = func.coalesce(o.c.outcome_unknown_since, as_utc(outcome_unknown_at))
        if error is not None:  # the last error stays visible while the row waits for its retry
            values["error_code"], values["error_class"], values["error_text"] = error
        stmt = update(o).where(o.c.id == outbound_id, o.c.claimed_by == claimer, o.c.status == const("queued"))
        result = await conn.execute(stmt.values(values))
        return bool(result.rowcount)

    async def set_fallback_used(self, conn: AsyncConnection, outbound_id: int) -> None:
        await conn.execute(
            update(outbound_messages).where(outbound_messages.c.id == outbound_id).values(fallback_used=True)
        )

    async def set_fallback_used_many(self, conn: AsyncConnection, outbound_ids: Iterable[int]) -> None:
        ids = sorted(set(outbound_ids))
        if ids:
            await conn.execute(
                update(outbound_messages).where(outbound_messages.c.id.in_(ids)).values(fallback_used=True)
            )

    async def release_many(self, conn: AsyncConnection, claimer: str, items: Sequence[Release]) -> None:
        """`release` for many rows: one executemany UPDATE per shape of release (a plain wait, a throttle, an
        unknown outcome, with or without the last error), so a batch costs at most a handful of statements.
        Rows no longer ours (`claimed_by`) or no longer queued are left alone, as `release` does."""
        if not items:
            return
        o = outbound_messages
        now = utcnow()
        groups: dict[tuple[bool, bool, bool], list[dict[str, Any]]] = {}
        for item in items:
            shape = (item.throttled, item.outcome_unknown_at is not None, item.error is not None)
            params: dict[str, Any] = {
                "b_id": item.outbound_id,
                "v_due": as_utc(item.due_at),
                "v_reason": item.waiting_reason,
            }
            if item.outcome_unknown_at is not None:
                params["v_unknown"] = as_utc(item.outcome_unknown_at)
            if item.error is not None:
                params["v_code"], params["v_class"], params["v_text"] = item.error
            groups.setdefault(shape, []).append(params)
        for (throttled, unknown, error), params_list in groups.items():
            values: dict[str, Any] = {
                "claimed_by": None,
                "claimed_until": None,
                "sending_since": None,
                "due_at": bindparam("v_due"),
                "waiting_reason": bindparam("v_reason"),
                "updated_at": now,
            }
            if throttled:
                values["throttles"] = o.c.throttles + 1
            if unknown:
                values["outcome_unknown_since"] = func.coalesce(
                    o.c.outcome_unknown_since, bindparam("v_unknown", type_=UTCDateTime())
                )
            if error:
                values["error_code"] = bindparam("v_code")
                values["error_class"] = bindparam("v_class")
                values["error_text"] = bindparam("v_text")
            stmt = (
                update(o)
                # "queued" bound, not `const`: an executemany cannot take literal values (and the id picks the row)
                .where(o.c.id == bindparam("b_id"), o.c.claimed_by == claimer, o.c.status == "queued")
                .values(values)
            )
            await conn.execute(stmt, params_list)
        # A row a status settled while we held it (a resend whose first send was accepted after all) is no longer
        # queued: its lease ends here all the same, so its recipient's next row may be claimed now, not when the
        # lease runs out (`claim_due` waits for earlier leased rows).
        await conn.execute(
            update(o)
            .where(o.c.id == bindparam("b_id"), o.c.claimed_by == claimer, o.c.status != "queued")
            .values(claimed_by=None, claimed_until=None, sending_since=None),
            [{"b_id": item.outbound_id} for item in items],
        )

    async def recipients(
        self, conn: AsyncConnection, phone_number_id: str, keys: Iterable[str]
    ) -> dict[str, ContactRecord]:
        """The contact of each key (matched like `ContactRepository.get`, merged contacts followed): what the
        claim needs for the 24 h window and the consent rule; absent keys are missing. Index lookups by
        contact_key, wa_id and user_id (`find_many`)."""
        return await ContactRepository().find_many(conn, phone_number_id, keys)

    async def unclassified_failures(self, conn: AsyncConnection, limit: int = 500) -> list[tuple[int, int]]:
        """(id, error_code) of failed rows whose error class was not recorded (a status webhook applied
        without a classifier)."""
        o = outbound_messages
        # the filter written as the partial index `ix_outbound_messages_unclassified` has it: only those rows
        stmt = (
            select(o.c.id, o.c.error_code)
            .where(o.c.status == const("failed"), o.c.error_class.is_(None), o.c.error_code.is_not(None))
            .order_by(o.c.id)
            .limit(limit)
        )
        return [(int(r.id), int(r.error_code)) for r in await conn.execute(stmt)]

    async def set_error_classes(self, conn: AsyncConnection, classes: dict[int, str]) -> None:
        for outbound_id, error_class in classes.items():
            await conn.execute(
                update(outbound_messages)
                .where(outbound_messages.c.id == outbound_id, outbound_messages.c.error_class.is_(None))
                .values(error_class=error_class)
            )

    async def waiting_counts(self, conn: AsyncConnection) -> dict[str, int]:
        """Queued rows per waiting reason (`""` for rows simply due), from the counters."""
        c = outbound_counts
        stmt = select(c.c.waiting_reason, func.sum(c.c.n)).where(c.c.status == const("queued"))
        stmt = stmt.group_by(c.c.waiting_reason)
        return {str(r[0]): int(r[1]) for r in await conn.execute(stmt) if r[1]}

    async def status_counts(self, conn: AsyncConnection, phone_number_id: str | None = None) -> dict[str, int]:
        """Outbound rows per delivery status (of one number, or of all), from the counters."""
        c = outbound_counts
        stmt = select(c.c.status, func.sum(c.c.n)).group_by(c.c.status)
        if phone_number_id is not None:
            stmt = stmt.where(c.c.phone_number_id == phone_number_id)
        return {str(r[0]): int(r[1]) for r in await conn.execute(stmt) if r[1]}

    async def fold_counters(self, conn: AsyncConnection) -> int:
        """PostgreSQL: fold the counter shards of backends that have exited into shard 0 (see revision 0006),
        so a count sums about as many rows as there are live connections; returns the shard rows folded.
        SQLite (one shard) has nothing to fold. One folder at a time: an advisory lock tried, not waited for."""
        if not is_postgres(conn):
            return 0
        got = await conn.execute(text("SELECT pg_try_advisory_xact_lock(:cls, 0)"), {"cls": LOCK_CLASS_FOLD})
        if not got.scalar_one():
            return 0
        folded = 0
        for table, key in (("outbound_counts", "phone_number_id, status, waiting_reason"),
                           ("campaign_counts", "campaign_id, status")):  # fmt: skip
            result = await conn.execute(
                text(
                    f"WITH gone AS (DELETE FROM {table} WHERE shard <> 0 AND shard NOT IN "
                    f"(SELECT pid FROM pg_stat_activity WHERE pid IS NOT NULL) RETURNING {key}, n) "
                    f"INSERT INTO {table} AS c ({key}, shard, n) SELECT {key}, 0, sum(n) FROM gone GROUP BY {key} "
                    f"ON CONFLICT ({key}, shard) DO UPDATE SET n = c.n + EXCLUDED.n"
                )
            )
            folded += max(result.rowcount, 0)
        return folded


def _case_queued(reason: str) -> Any:
    return case((outbound_messages.c.status == const("queued"), reason), else_=outbound_messages.c.waiting_reason)


class OutboxRepository(DispatchQueries):
    async def enqueue(
        self,
        conn: AsyncConnection,
        phone_number_id: str,
        message: OutboundMessage,
        *,
        contact_key: str,
        business_initiated: bool,
        fallback_template: dict[str, Any] | None = None,
        session_id: int | None = None,
        node_id: str | None = None,
        campaign_id: int | None = None,
        due_at: datetime | None = None,
    ) -> int:
        """Queue `message` for `contact_key` of `phone_number_id`; returns the outbox id."""
        if not message.to and not message.recipient:
            raise ValueError("an outbound message needs `to` (wa_id / phone) or `recipient` (user id)")
        now = utcnow()
        stmt = (
            outbound_messages.insert()
            .values(
                phone_number_id=phone_number_id,
                contact_key=contact_key,
                to_number=message.to,
                recipient_user_id=message.recipient,
                type=message.type,
                content=message.content,
                reply_to=message.reply_to,
                status=DeliveryStatus.QUEUED.value,
                business_initiated=business_initiated,
                fallback_template=fallback_template,
                campaign_id=campaign_id,
                session_id=session_id,
                node_id=node_id,
                due_at=as_utc(due_at) if due_at else now,
                attempts=0,
                created_at=now,
                updated_at=now,
            )
            .returning(outbound_messages.c.id)
        )
        return int((await conn.execute(stmt)).scalar_one())

    async def enqueue_many(
        self, conn: AsyncConnection, phone_number_id: str, items: Sequence[NewOutbound]
    ) -> list[int]:
        """Queue many messages of `phone_number_id` with one bulk INSERT; returns their outbox ids in `items` order.

        Ids grow in `items` order, so messages to one recipient leave in the order given. SQLite: one
        executemany in one hop to aiosqlite's thread; PostgreSQL: one `INSERT ... SELECT FROM unnest(...)`.
        """
        now = utcnow()
        rows: list[tuple[Any, ...]] = []
        for item in items:
            message = item.message
            if not message.to and not message.recipient:
                raise ValueError("an outbound message needs `to` (wa_id / phone) or `recipient` (user id)")
            rows.append(
                (
                    phone_number_id,
                    item.contact_key,
                    message.to,
                    message.recipient,
                    message.type,
                    _json(message.content),
                    message.reply_to,
                    DeliveryStatus.QUEUED.value,
                    item.business_initiated,
                    _json(item.fallback_template) if item.fallback_template is not None else None,
                    item.campaign_id,
                    item.session_id,
                    item.node_id,
                    as_utc(item.due_at) if item.due_at else now,
                    0,
                    now,
                    now,
                )
            )
        if is_postgres(conn):
            # The head trigger share-locks each new row's current head (revision 0006); taken here first, all at
            # once in id order, the order the recorder locks its rows in, so a bulk enqueue cannot deadlock with it.
            # One probe per recipient: the first entries of its queue in the queued-by-recipient index (an
            # `IN (<keys>)` filter over the queue instead went superlinear: 20k recipients took seconds).
            keys = sorted({item.contact_key for item in items})
            await conn.execute(_LOCK_HEADS, {"pnid": phone_number_id, "keys": keys})
        return [int(r[0]) for r in await _OUTBOUND_INSERT.run(conn, rows)]

    async def get(self, conn: AsyncConnection, outbound_id: int) -> OutboundRecord | None:
        row = (await conn.execute(select(*OUTBOUND_COLUMNS).where(outbound_messages.c.id == outbound_id))).first()
        return OutboundRecord.from_row(row) if row else None

    async def by_provider_id(self, conn: AsyncConnection, provider_message_id: str) -> OutboundRecord | None:
        stmt = select(*OUTBOUND_COLUMNS).where(outbound_messages.c.provider_message_id == provider_message_id)
        row = (await conn.execute(stmt)).first()
        return OutboundRecord.from_row(row) if row else None

    async def record_attempt(
        self,
        conn: AsyncConnection,
        outbound_id: int,
        outcome: str,
        *,
        started_at: datetime,
        finished_at: datetime | None = None,
        http_status: int | None = None,
        error_code: int | None = None,
        detail: str | None = None,
    ) -> int:
        """Record one send try (`accepted` / `error` / `unknown`); returns its attempt number."""
        row = AttemptRow(outbound_id, outcome, started_at, finished_at, http_status, error_code, detail)
        number = (await self.record_attempts(conn, [row]))[0]
        if number is None:
            raise LookupError(f"no outbound message {outbound_id}")
        return number

    async def record_attempts(self, conn: AsyncConnection, rows: Sequence[AttemptRow]) -> list[int | None]:
        """Record many send tries; their attempt numbers in `rows` order (None: no such outbox row, not recorded).

        Two statements for the whole batch: one `UPDATE ... WHERE id IN (...) RETURNING` counts the tries
        (per multiplicity, should one row appear more than once) and one bulk INSERT writes them.
        """
        if not rows:
            return []
        o = outbound_messages
        counts = Counter(row.outbound_id for row in rows)
        by_multiplicity: dict[int, list[int]] = {}
        for oid, k in counts.items():
            by_multiplicity.setdefault(k, []).append(oid)
        now = utcnow()
        after: dict[int, int] = {}
        for k, ids in by_multiplicity.items():
            stmt = (
                update(o)
                .where(o.c.id.in_(sorted(ids)))
                .values(attempts=o.c.attempts + k, updated_at=now)
                .returning(o.c.id, o.c.attempts)
            )
            after.update((int(r[0]), int(r[1])) for r in await conn.execute(stmt))
        seen: Counter[int] = Counter()
        numbers: list[int | None] = []
        inserts: list[tuple[Any, ...]] = []
        for row in rows:
            total = after.get(row.outbound_id)
            if total is None:
                numbers.append(None)
                continue
            seen[row.outbound_id] += 1
            number = total - counts[row.outbound_id] + seen[row.outbound_id]
            numbers.append(number)
            inserts.append(
                (row.outbound_id, number, as_utc(row.started_at), as_utc(row.finished_at) if row.finished_at else None,
                 row.outcome, row.http_status, row.error_code, row.detail)
            )
        await _ATTEMPT_INSERT.run(conn, inserts)
        return numbers

    async def record_accepted(
        self,
        conn: AsyncConnection,
        outbound_id: int,
        provider_message_id: str,
        at: datetime | None = None,
        *,
        classify: Classifier | None = None,
    ) -> list[AppliedResult]:
        """The provider accepted the message with id `provider_message_id`.

        Records the id (status `accepted` unless a status already moved it further), releases the
        claim, clears `outcome_unknown_since`, and applies any statuses held for that id, in
        arrival order; returns what those held statuses did. Raises `LookupError` for an unknown
        outbox id and `ValueError` when the message already has a different provider id.
        """
        done = await self.record_accepted_many(conn, [Acceptance(outbound_id, provider_message_id, at)],
                                               classify=classify)
        if done.missing:
            raise LookupError(f"no outbound message {outbound_id}")
        if outbound_id in done.conflicts:
            raise ValueError(
                f"outbound message {outbound_id} already has provider id {done.conflicts[outbound_id]!r}, "
                f"not {provider_message_id!r}"
            )
        return done.results

    async def record_accepted_many(
        self, conn: AsyncConnection, items: Sequence[Acceptance], *, classify: Classifier | None = None
    ) -> AcceptedBatch:
        """`record_accepted` for a batch, in a fixed number of statements: the wamid locks (PostgreSQL), one
        SELECT of the rows, one SELECT of the statuses held for all the batch's wamids, one executemany UPDATE.

        Rows with no outbox row (`missing`) or already holding another provider id (`conflicts`, as is a
        second row of the batch claiming a wamid an earlier one took) are not written; the rest are.
        """
        if not items:
            return AcceptedBatch([], {}, [])
        # Status appliers take the wamid advisory locks before any row lock; so do we, for the whole batch
        # at once (sorted, one statement), so that the two can never deadlock.
        await lock_keys(conn, LOCK_CLASS_WAMID, [item.provider_message_id for item in items])
        states = {state.id: state for state in await load_states(conn, ids=[item.outbound_id for item in items])}
        now = utcnow()
        conflicts: dict[int, str] = {}
        missing: list[int] = []
        owner: dict[str, int] = {}  # wamid -> the row of this batch that took it (it is UNIQUE)
        accepted: dict[int, MessageState] = {}
        for item in items:
            state = states.get(item.outbound_id)
            if state is None:
                missing.append(item.outbound_id)
                continue
            wamid = item.provider_message_id
            taken_by = owner.setdefault(wamid, state.id)
            if state.provider_message_id not in (None, wamid) or taken_by != state.id:
                conflicts[state.id] = state.provider_message_id or wamid
                continue
            state.accept(wamid, as_utc(item.at) if item.at else now)
            accepted[state.id] = state
        results = await adopt_held(conn, list(accepted.values()), classify)
        await write_states(conn, accepted.values(), extra=_RELEASE_CLAIM)
        return AcceptedBatch(results, conflicts, missing)

    async def record_failed(
        self,
        conn: AsyncConnection,
        outbound_id: int,
        code: int | None,
        error_class: str | None,
        text: str | None,
        at: datetime | None = None,
    ) -> bool:
        """The send failed for good: mark the message failed with its reason and release the claim.

        Follows the status rule: a message a status webhook already showed delivered is not failed
        (returns False, the message is left as it is apart from the released claim).
        """
        applied = (await self.record_failed_many(conn, [Failure(outbound_id, code, error_class, text, at)]))[0]
        if applied is None:
            raise LookupError(f"no outbound message {outbound_id}")
        return applied

    async def record_failed_many(self, conn: AsyncConnection, items: Sequence[Failure]) -> list[bool | None]:
        """`record_failed` for a batch (one SELECT, one executemany UPDATE); per item whether the message
        became failed (None: no such outbox row)."""
        if not items:
            return []
        states = {state.id: state for state in await load_states(conn, ids=[item.outbound_id for item in items])}
        now = utcnow()
        applied: list[bool | None] = []
        for item in items:
            state = states.get(item.outbound_id)
            if state is None:
                applied.append(None)
                continue
            applied.append(state.fail(as_utc(item.at) if item.at else now, item.code, item.error_class, item.text))
        await write_states(conn, states.values(), extra=_RELEASE_CLAIM)
        return applied

    async def history(self, conn: AsyncConnection, outbound_id: int) -> OutboundHistory | None:
        """The message with its send attempts and status events, each in order."""
        message = await self.get(conn, outbound_id)
        if message is None:
            return None
        stmt = select(*_ATTEMPT_COLUMNS).where(send_attempts.c.outbound_id == outbound_id).order_by(send_attempts.c.id)
        attempts = [SendAttemptRecord(**row._mapping) for row in await conn.execute(stmt)]
        statuses = await StatusRepository().history(conn, outbound_id)
        return OutboundHistory(message, attempts, statuses)

    async def attempts_with_code(self, conn: AsyncConnection, outbound_id: int, error_code: int) -> int:
        """How many recorded tries of this message failed with `error_code`."""
        stmt = select(func.count()).select_from(send_attempts).where(
            send_attempts.c.outbound_id == outbound_id, send_attempts.c.error_code == error_code
        )
        return int((await conn.execute(stmt)).scalar_one())

    async def queued_count(self, conn: AsyncConnection, phone_number_id: str | None = None) -> int:
        """Queued rows (of one number, or of all), from the counters."""
        return (await self.status_counts(conn, phone_number_id)).get(DeliveryStatus.QUEUED.value, 0)
