"""The outbox: outbound messages, durable, leaving each recipient in id order.

Rows start `queued` with a `due_at`; the dispatcher (package `waflow.outbox`) claims them with a
lease (`claimed_by`, `claimed_until`), records each try in `send_attempts`, and ends a try with
`record_accepted` (the provider's message id) or `record_failed`. A send whose outcome is not
known (timeout, crash) stays `queued` with `outcome_unknown_since` set: the status webhooks carry
`wf:<outbox id>` as callback data and reconcile it (see `statuses`) instead of a resend.

Per-recipient order: the head of a recipient's queue is its lowest `id` with status `queued`
(index `ix_outbound_messages_queued_by_recipient`); a dispatcher sends a row only when it is that
head and due, so a retrying message holds back the ones written after it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from waflow.canonical import DeliveryStatus, OutboundMessage
from waflow.store.dialect import LOCK_CLASS_WAMID, lock_keys
from waflow.store.statuses import (
    AppliedResult,
    Classifier,
    StatusEventRecord,
    StatusRepository,
    adopt_held,
    load_states,
    write_states,
)
from waflow.store.tables import outbound_messages, send_attempts
from waflow.store.types import as_utc, utcnow

_RELEASE_CLAIM = {"claimed_by": None, "claimed_until": None}


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


class OutboxRepository:
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
        counted = (
            update(outbound_messages)
            .where(outbound_messages.c.id == outbound_id)
            .values(attempts=outbound_messages.c.attempts + 1, updated_at=utcnow())
            .returning(outbound_messages.c.attempts)
        )
        attempt = (await conn.execute(counted)).scalar_one_or_none()
        if attempt is None:
            raise LookupError(f"no outbound message {outbound_id}")
        await conn.execute(
            send_attempts.insert().values(
                outbound_id=outbound_id,
                attempt=attempt,
                started_at=as_utc(started_at),
                finished_at=as_utc(finished_at) if finished_at else None,
                outcome=outcome,
                http_status=http_status,
                error_code=error_code,
                detail=detail,
            )
        )
        return int(attempt)

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
        await lock_keys(conn, LOCK_CLASS_WAMID, [provider_message_id])
        states = await load_states(conn, ids=[outbound_id])
        if not states:
            raise LookupError(f"no outbound message {outbound_id}")
        state = states[0]
        if state.provider_message_id not in (None, provider_message_id):
            raise ValueError(
                f"outbound message {outbound_id} already has provider id {state.provider_message_id!r}, "
                f"not {provider_message_id!r}"
            )
        state.accept(provider_message_id, as_utc(at) if at else utcnow())
        results = await adopt_held(conn, [state], classify)
        await write_states(conn, [state], extra=_RELEASE_CLAIM)
        return results

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
        states = await load_states(conn, ids=[outbound_id])
        if not states:
            raise LookupError(f"no outbound message {outbound_id}")
        state = states[0]
        applied = state.fail(as_utc(at) if at else utcnow(), code, error_class, text)
        await write_states(conn, [state], extra=_RELEASE_CLAIM)
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

    async def queued_count(self, conn: AsyncConnection, phone_number_id: str | None = None) -> int:
        stmt = select(func.count()).select_from(outbound_messages).where(outbound_messages.c.status == "queued")
        if phone_number_id is not None:
            stmt = stmt.where(outbound_messages.c.phone_number_id == phone_number_id)
        return int((await conn.execute(stmt)).scalar_one())
