"""Replies before bulk (issue 13): the claim's priorities, on SQLite and PostgreSQL.

`OutboxRepository.claim_due` fills a claim from the rows of no campaign first (conversation replies, API
sends), then shares what is left among the running campaigns round-robin; it only ever takes the head of a
recipient's queue, so the order within one recipient holds. Each test calls the claim directly (no
dispatcher, no clock but the `now` it is given).
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta

from waflow.canonical import OutboundMessage
from waflow.outbox import enqueue_campaign, pause_campaign
from waflow.store import Store
from waflow.store.outbox import ClaimedRow
from waflow.store.types import utcnow

PNID = "106540352242922"
OTHER = "999000111222"  # a second business number
LEASE = timedelta(minutes=5)


def later() -> datetime:
    return utcnow() + timedelta(seconds=1)  # every row enqueued so far is due


async def campaign(store: Store, name: str, numbers: Sequence[str], phone_number_id: str = PNID) -> int:
    return await enqueue_campaign(store, name=name, phone_number_id=phone_number_id, template="promo",
                                  language="en_US", contacts=[{"phone": n} for n in numbers])


async def reply(store: Store, to: str, body: str = "reply", phone_number_id: str = PNID) -> int:
    message = OutboundMessage(to=to, type="text", content={"body": body})
    async with store.begin() as conn:
        return await store.outbox.enqueue(conn, phone_number_id, message, contact_key=to, business_initiated=False)


async def claim(store: Store, limit: int, numbers: Sequence[str] = (PNID,)) -> list[ClaimedRow]:
    async with store.begin() as conn:
        return await store.outbox.claim_due(conn, "test", limit=limit, lease=LEASE, now=later(),
                                            phone_number_ids=list(numbers))


async def accept(store: Store, rows: Sequence[ClaimedRow]) -> None:
    async with store.begin() as conn:
        for row in rows:
            await store.outbox.record_accepted(conn, row.record.id, f"wamid.T{row.record.id}")


def numbers(prefix: int, n: int) -> list[str]:
    return [f"34{prefix * 1_000_000 + i}" for i in range(n)]


async def test_a_reply_queued_after_a_campaign_is_claimed_first(store: Store) -> None:
    await campaign(store, "spring", numbers(601, 300))
    rid = await reply(store, "34699000001")

    rows = await claim(store, 4)

    assert rows[0].record.id == rid, "the reply leads the claim, not the campaign's older rows"
    assert [r.record.campaign_id is None for r in rows] == [True, False, False, False]


async def test_replies_fill_the_claim_before_any_campaign_row(store: Store) -> None:
    await campaign(store, "spring", numbers(601, 100))
    replies = [await reply(store, to) for to in numbers(699, 7)]

    first = await claim(store, 5)
    assert [r.record.id for r in first] == replies[:5], "replies only, oldest first"
    second = await claim(store, 5)
    assert [r.record.id for r in second][:2] == replies[5:]
    assert all(r.record.campaign_id is not None for r in second[2:]) and len(second) == 5


async def test_replies_of_every_number_come_first(store: Store) -> None:
    await campaign(store, "spring", numbers(601, 50))
    on_other = await reply(store, "34699000001", phone_number_id=OTHER)
    on_ours = await reply(store, "34699000002")

    rows = await claim(store, 3, numbers=(PNID, OTHER))

    assert [r.record.id for r in rows][:2] == [on_other, on_ours]  # earliest due first among the replies
    assert rows[2].record.campaign_id is not None


async def test_two_campaigns_started_together_are_interleaved(store: Store) -> None:
    first = await campaign(store, "spring", numbers(601, 100))
    second = await campaign(store, "summer", numbers(602, 100))  # every row due after all of `first`'s

    rows = await claim(store, 10)
    assert Counter(r.record.campaign_id for r in rows) == {first: 5, second: 5}

    # one row at a time: the campaigns take turns (the turn carries over from claim to claim)
    singles = [(await claim(store, 1))[0].record.campaign_id for _ in range(6)]
    assert all(a != b for a, b in itertools.pairwise(singles)), singles
    assert Counter(singles) == {first: 3, second: 3}

    # an odd room: one campaign takes the extra row, the other takes it on the next claim
    odd = [Counter(r.record.campaign_id for r in await claim(store, 3)) for _ in range(2)]
    assert odd[0] + odd[1] == {first: 3, second: 3}
    assert sorted(odd[0].values()) == [1, 2]


async def test_a_short_campaign_leaves_its_share_to_the_others(store: Store) -> None:
    small = await campaign(store, "small", numbers(601, 2))
    big = await campaign(store, "big", numbers(602, 50))
    bigger = await campaign(store, "bigger", numbers(603, 50))

    rows = await claim(store, 12)

    assert Counter(r.record.campaign_id for r in rows) == {small: 2, big: 5, bigger: 5}


async def test_campaigns_share_what_replies_leave(store: Store) -> None:
    first = await campaign(store, "spring", numbers(601, 40))
    second = await campaign(store, "summer", numbers(602, 40))
    replies = [await reply(store, to) for to in numbers(699, 4)]

    rows = await claim(store, 10)

    assert [r.record.id for r in rows[:4]] == replies
    assert Counter(r.record.campaign_id for r in rows[4:]) == {first: 3, second: 3}


async def test_a_paused_campaign_takes_no_turn(store: Store) -> None:
    first = await campaign(store, "spring", numbers(601, 40))
    second = await campaign(store, "summer", numbers(602, 40))
    assert await pause_campaign(store, first)

    rows = await claim(store, 8)

    assert Counter(r.record.campaign_id for r in rows) == {second: 8}


async def test_order_within_one_recipient_holds_whatever_the_priority(store: Store) -> None:
    x, y = "34601000001", "34601000002"
    # x is in the campaign twice; its reply is written after both: replies outrank campaign rows, but a
    # recipient's rows leave in the order they were written
    await campaign(store, "spring", [x, y, x, *numbers(602, 20)])
    reply_x = await reply(store, x, "for x")
    reply_w = await reply(store, "34699000001", "for w")

    rounds: list[list[ClaimedRow]] = []
    for _ in range(3):
        rows = await claim(store, 30)
        assert len([r for r in rows if r.record.contact_key == x]) <= 1, "one row of a recipient at a time"
        rounds.append(rows)
        await accept(store, rows)

    first, second, third = ([r.record for r in rows] for rows in rounds)
    assert first[0].id == reply_w, "the reply whose recipient has nothing queued before it leads"
    assert reply_x not in [r.id for r in first + second], "x's reply waits for x's campaign rows"
    x_rows = [r for r in first + second + third if r.contact_key == x]
    assert [r.campaign_id is not None for r in x_rows] == [True, True, False]
    assert [r.id for r in x_rows] == sorted(r.id for r in x_rows) and x_rows[-1].id == reply_x
    assert [r.id for r in third] == [reply_x]
    assert await claim(store, 1) == [], "everything was sent"
