"""The store's batched outbox writes (what the dispatcher's recorder and campaigns use), on SQLite and PostgreSQL.

Each batch method must leave the rows exactly as the one-row method would: these compare them on twin rows.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from waflow.canonical import DeliveryStatus as S
from waflow.canonical import OutboundMessage, StatusUpdate
from waflow.store import StatusOutcome, Store
from waflow.store.outbox import Acceptance, AttemptRow, Failure, NewOutbound, Release
from waflow.store.tables import outbound_messages, send_attempts

PNID = "106540352242922"
T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
CLAIMER = "test-dispatcher"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def text(to: str, body: str = "hi") -> OutboundMessage:
    return OutboundMessage(to=to, type="text", content={"body": body})


async def claim_all(store: Store, n: int = 1000) -> list[int]:
    async with store.begin() as conn:
        rows = await store.outbox.claim_due(conn, CLAIMER, limit=n, lease=timedelta(seconds=60))
    return [r.record.id for r in rows]


async def test_enqueue_many_matches_enqueue_and_keeps_order(store: Store) -> None:
    fallback = {"name": "hello_world", "language": {"code": "en"}}
    items = [
        NewOutbound(text("346", "a"), contact_key="346", business_initiated=False),
        NewOutbound(text("347", "x"), contact_key="347", business_initiated=True, fallback_template=fallback,
                    campaign_id=None, session_id=7, node_id="n1", due_at=at(5)),
        NewOutbound(text("346", "b"), contact_key="346", business_initiated=False),
    ]
    async with store.begin() as conn:
        single = await store.outbox.enqueue(conn, PNID, text("345", "s"), contact_key="345", business_initiated=True,
                                            fallback_template=fallback, session_id=7, node_id="n1", due_at=at(5))
        ids = await store.outbox.enqueue_many(conn, PNID, items)
        assert await store.outbox.enqueue_many(conn, PNID, []) == []
    assert ids == sorted(ids) and ids[0] > single and len(set(ids)) == 3
    async with store.read() as conn:
        one = await store.outbox.get(conn, single)
        many = [await store.outbox.get(conn, i) for i in ids]
    assert one is not None and all(m is not None for m in many)
    a, x, b = many
    assert a is not None and x is not None and b is not None
    assert [a.content, b.content] == [{"body": "a"}, {"body": "b"}] and a.status is S.QUEUED and a.attempts == 0
    assert a.fallback_template is None and a.to_number == "346" and a.due_at == a.created_at
    for field in ("business_initiated", "fallback_template", "session_id", "node_id", "due_at", "type", "status"):
        assert getattr(x, field) == getattr(one, field), field
    with pytest.raises(ValueError, match="needs `to`"):
        async with store.begin() as conn:
            bad = OutboundMessage(to=None, type="text", content={"body": "?"})
            await store.outbox.enqueue_many(conn, PNID, [NewOutbound(bad, contact_key="x", business_initiated=False)])
    # the recipient's queue is in list order: only "a" is claimable, then "b" once "a" is settled
    claimed = await claim_all(store)
    assert a.id in claimed and b.id not in claimed


async def test_record_attempts_numbers_each_row_and_skips_missing(store: Store) -> None:
    async with store.begin() as conn:
        ids = await store.outbox.enqueue_many(
            conn, PNID, [NewOutbound(text(f"34{i}"), contact_key=f"34{i}", business_initiated=False) for i in range(3)]
        )
        first = await store.outbox.record_attempt(conn, ids[0], "error", started_at=at(0), error_code=131000)
        numbers = await store.outbox.record_attempts(conn, [
            AttemptRow(ids[0], "accepted", at(1), at(2), http_status=200),
            AttemptRow(ids[1], "unknown", at(1), None, detail="timeout"),
            AttemptRow(999_999, "error", at(1)),
            AttemptRow(ids[1], "accepted", at(3), at(4), http_status=200),  # the same row twice in one batch
        ])
        assert await store.outbox.record_attempts(conn, []) == []
        with pytest.raises(LookupError):
            await store.outbox.record_attempt(conn, 999_998, "error", started_at=at(0))
    assert first == 1 and numbers == [2, 1, None, 2]
    async with store.read() as conn:
        rows = (await conn.execute(
            select(send_attempts.c.outbound_id, send_attempts.c.attempt, send_attempts.c.outcome,
                   send_attempts.c.started_at, send_attempts.c.finished_at, send_attempts.c.detail)
            .order_by(send_attempts.c.id)
        )).all()
        attempts = dict((await conn.execute(select(outbound_messages.c.id, outbound_messages.c.attempts))).all())
    assert [tuple(r) for r in rows] == [
        (ids[0], 1, "error", at(0), None, None),
        (ids[0], 2, "accepted", at(1), at(2), None),
        (ids[1], 1, "unknown", at(1), None, "timeout"),
        (ids[1], 2, "accepted", at(3), at(4), None),
    ]
    assert attempts == {ids[0]: 2, ids[1]: 2, ids[2]: 0}


async def test_record_accepted_many_adopts_held_statuses_and_reports_conflicts(store: Store) -> None:
    async with store.begin() as conn:
        ids = await store.outbox.enqueue_many(
            conn, PNID, [NewOutbound(text(f"35{i}"), contact_key=f"35{i}", business_initiated=False) for i in range(5)]
        )
    claimed = await claim_all(store)
    assert sorted(claimed) == ids
    async with store.begin() as conn:
        await store.outbox.record_accepted(conn, ids[3], "wamid.old")  # a resend after an unknown outcome: below
        held = await store.statuses.apply_many(conn, [
            StatusUpdate(phone_number_id=PNID, message_id=f"wamid.b{i}", status=s, timestamp=at(t),
                         recipient_id="35")
            for i, s, t in [(0, S.DELIVERED, 2), (0, S.SENT, 1), (1, S.READ, 3)]
        ])
    assert {h.outcome for h in held} == {StatusOutcome.HELD}
    async with store.begin() as conn:
        done = await store.outbox.record_accepted_many(conn, [
            Acceptance(ids[0], "wamid.b0", at(0)),
            Acceptance(ids[1], "wamid.b1", at(0)),
            Acceptance(ids[2], "wamid.b2", at(0)),
            Acceptance(ids[3], "wamid.new", at(0)),  # already has wamid.old: not written
            Acceptance(ids[4], "wamid.b2", at(0)),  # the wamid an earlier row of the batch took: not written
            Acceptance(777_777, "wamid.ghost", at(0)),
        ])
    assert done.missing == [777_777]
    assert done.conflicts == {ids[3]: "wamid.old", ids[4]: "wamid.b2"}
    assert sorted((r.outbound_id, r.outcome) for r in done.results) == sorted(
        [(ids[0], StatusOutcome.ADVANCED), (ids[0], StatusOutcome.RECORDED), (ids[1], StatusOutcome.ADVANCED)]
    )
    async with store.read() as conn:
        rec = {i: await store.outbox.get(conn, i) for i in ids}
        assert await store.statuses.held(conn) == []
    r0, r1, r2, r3, r4 = (rec[i] for i in ids)
    assert r0 is not None and r0.status is S.DELIVERED and r0.sent_at == at(1) and r0.delivered_at == at(2)
    assert r1 is not None and r1.status is S.READ and r1.provider_message_id == "wamid.b1"
    assert r2 is not None and r2.status is S.ACCEPTED and r2.accepted_at == at(0) and r2.claimed_by is None
    assert r3 is not None and r3.provider_message_id == "wamid.old"
    assert r4 is not None and r4.status is S.QUEUED and r4.provider_message_id is None and r4.claimed_by == CLAIMER
    # the one-row call keeps raising as before
    async with store.begin() as conn:
        with pytest.raises(ValueError, match="already has provider id"):
            await store.outbox.record_accepted(conn, ids[3], "wamid.other")
        with pytest.raises(LookupError):
            await store.outbox.record_accepted(conn, 555_555, "wamid.none")


async def test_record_failed_many_follows_the_status_rule(store: Store) -> None:
    async with store.begin() as conn:
        ids = await store.outbox.enqueue_many(
            conn, PNID, [NewOutbound(text(f"36{i}"), contact_key=f"36{i}", business_initiated=False) for i in range(2)]
        )
        await store.outbox.record_accepted(conn, ids[1], "wamid.d")
        await store.statuses.apply(conn, StatusUpdate(phone_number_id=PNID, message_id="wamid.d",
                                                      status=S.DELIVERED, timestamp=at(2), recipient_id="36"))
    await claim_all(store)
    async with store.begin() as conn:
        applied = await store.outbox.record_failed_many(conn, [
            Failure(ids[0], 131026, "invalid_recipient", "Message undeliverable", at(3)),
            Failure(ids[1], 131000, "retryable", "late"),
            Failure(444_444, None, None, None),
        ])
    assert applied == [True, False, None]
    async with store.read() as conn:
        f, d = await store.outbox.get(conn, ids[0]), await store.outbox.get(conn, ids[1])
    assert f is not None and f.status is S.FAILED and f.error_code == 131026 and f.failed_at == at(3)
    assert f.error_class == "invalid_recipient" and f.claimed_by is None
    assert d is not None and d.status is S.DELIVERED and d.error_code is None


async def test_release_many_every_shape_and_only_our_queued_rows(store: Store) -> None:
    async with store.begin() as conn:
        ids = await store.outbox.enqueue_many(
            conn, PNID, [NewOutbound(text(f"37{i}"), contact_key=f"37{i}", business_initiated=False) for i in range(6)]
        )
    await claim_all(store)
    async with store.begin() as conn:  # a row another dispatcher holds now is not ours to release
        await conn.execute(outbound_messages.update().where(outbound_messages.c.id == ids[5])
                           .values(claimed_by="someone-else"))
    async with store.begin() as conn:
        await store.outbox.release_many(conn, CLAIMER, [
            Release(ids[0], at(10), "pair"),
            Release(ids[1], at(11), "throttled", throttled=True, error=(130429, "throttled", "rate")),
            Release(ids[2], at(12), "unknown_outcome", outcome_unknown_at=at(1), error=(None, "retryable", "timeout")),
            Release(ids[3], at(13), "retry", error=(131000, "retryable", "boom")),
            Release(ids[4], at(14), "throttled", throttled=True),
            Release(ids[5], at(15), "pair"),
        ])
        await store.outbox.release_many(conn, CLAIMER, [])
    async with store.read() as conn:
        rows = {
            r.id: r for r in (await conn.execute(
                select(outbound_messages.c.id, outbound_messages.c.due_at, outbound_messages.c.waiting_reason,
                       outbound_messages.c.throttles, outbound_messages.c.outcome_unknown_since,
                       outbound_messages.c.error_code, outbound_messages.c.error_text, outbound_messages.c.claimed_by)
            )).all()
        }
    assert all(rows[i].claimed_by is None for i in ids[:5]) and rows[ids[5]].claimed_by == "someone-else"
    assert [rows[i].due_at for i in ids[:5]] == [at(10), at(11), at(12), at(13), at(14)]
    assert [rows[i].waiting_reason for i in ids[:5]] == ["pair", "throttled", "unknown_outcome", "retry", "throttled"]
    assert [rows[i].throttles for i in ids] == [0, 1, 0, 0, 1, 0]
    assert rows[ids[2]].outcome_unknown_since == at(1) and rows[ids[0]].outcome_unknown_since is None
    assert [rows[i].error_code for i in ids[:5]] == [None, 130429, None, 131000, None]
    assert rows[ids[2]].error_text == "timeout" and rows[ids[4]].error_text is None
    async with store.begin() as conn:  # a second unknown outcome keeps the first one's time
        await conn.execute(outbound_messages.update().where(outbound_messages.c.id == ids[2])
                           .values(claimed_by=CLAIMER))
        await store.outbox.release_many(conn, CLAIMER, [Release(ids[2], at(20), "unknown_outcome",
                                                                 outcome_unknown_at=at(9))])
        rec = await store.outbox.get(conn, ids[2])
    assert rec is not None and rec.outcome_unknown_since == at(1) and rec.due_at == at(20)
