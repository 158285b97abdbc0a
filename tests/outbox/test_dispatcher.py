"""The dispatcher against the emulator on a real socket, with statuses coming back through the webhook receiver."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any, ClassVar

from waflow.canonical import DeliveryStatus
from waflow.cloudapi import CloudAPIClient, SendTimeout
from waflow.outbox import (
    DispatcherConfig,
    OutboxDispatcher,
    RetryPolicy,
    campaign_progress,
    enqueue_campaign,
    make_limiters,
    pause_campaign,
    resume_campaign,
)
from waflow.store import build_callback_data

PNID = "106540352242922"  # the emulator's number (conftest.PNID)
OutboxEnv = Any  # conftest.OutboxEnv: test modules cannot import the conftest under importlib mode
S = DeliveryStatus
SETTLED = {S.ACCEPTED, S.SENT, S.DELIVERED, S.READ, S.FAILED}


def received_bodies(env: OutboxEnv, wa_id: str) -> list[str]:
    return [m.content.get("body", "") for m in env.emu.sent() if m.wa_id == wa_id]


async def test_order_wamid_and_exactly_once(env: OutboxEnv) -> None:
    users = [f"3460000{i:04d}" for i in range(6)]
    await env.open_windows(*users)
    ids: dict[str, list[int]] = defaultdict(list)
    for n in range(5):
        for u in users:
            ids[u].append(await env.enqueue(u, content={"body": f"{u}-{n}"}))
    async with env.dispatcher(rate_per_s=200).running() as d:
        await d.drain(20)
    rows = {r.id: r for r in await env.rows()}
    assert all(r.status in SETTLED - {S.FAILED} and r.provider_message_id for r in rows.values())
    for u in users:
        assert received_bodies(env, u) == [f"{u}-{n}" for n in range(5)]
    counts = env.emu.sends_by_callback_data()
    assert all(counts.get(build_callback_data(i)) == 1 for i in rows)
    async with env.store.read() as conn:
        history = await env.store.outbox.history(conn, ids[users[0]][0])
    assert history is not None and [a.outcome for a in history.attempts] == ["accepted"]


async def test_faults_every_message_accepted_once_or_failed_with_reason(env: OutboxEnv) -> None:
    users = [f"3461000{i:04d}" for i in range(12)]
    await env.open_windows(*users)
    env.emu.faults.set(error_rates={131000: 0.04, 130429: 0.04, 131016: 0.03}, server_error_rate=0.03,
                       timeout_rate=0.03, drop_rate=0.03)
    expected: dict[str, list[str]] = defaultdict(list)
    for n in range(6):
        for u in users:
            body = f"{u}-{n}"
            expected[u].append(body)
            await env.enqueue(u, content={"body": body})
    retry = RetryPolicy(max_attempts=12, base_delay_s=0.02, max_delay_s=0.3, unknown_grace_s=0.6)
    async with env.dispatcher(rate_per_s=300, retry=retry).running() as d:
        await d.drain(45)
    rows = await env.rows()
    counts = env.emu.sends_by_callback_data()
    for r in rows:
        got = counts.get(build_callback_data(r.id), 0)
        if r.status is S.FAILED:
            assert got == 0 and r.error_class and r.error_text, r
        else:
            assert got == 1 and r.provider_message_id, (r, got)
    # per-recipient order: what each user received is its enqueue order, minus what failed for good
    failed = {r.content["body"] for r in rows if r.status is S.FAILED}
    for u in users:
        assert received_bodies(env, u) == [b for b in expected[u] if b not in failed]
    async with env.store.read() as conn:
        retried = [h for r in rows if (h := await env.store.outbox.history(conn, r.id)) and len(h.attempts) > 1]
    assert retried, "the faults caused retries"
    assert any(a.outcome == "unknown" for h in retried for a in h.attempts), "timeouts/drops are unknown outcomes"


async def test_window_closed_fallback_and_async_131047_look_alike(env: OutboxEnv) -> None:
    await env.open_windows("34620000001")
    never = await env.enqueue("34620000002", content={"body": "free-form to a stranger"})
    fallback = {"name": "hello_world", "language": {"code": "en_US"}}
    replaced = await env.enqueue("34620000003", content={"body": "hi"}, fallback=fallback)
    await env.store_contact("34620000004")  # our store thinks the window is open; Meta (the emulator) does not
    late = await env.enqueue("34620000004", content={"body": "Meta refuses later"})
    ok = await env.enqueue("34620000001", content={"body": "inside the window"})
    async with env.dispatcher().running() as d:
        await d.drain(10)
        await env.wait_until(lambda rows: all(r.status in (S.FAILED, S.READ) for r in rows))
        await d.maintenance()  # a maintenance pass classifies the webhook's failure
    sync_fail, async_fail = await env.row(never), await env.row(late)
    assert sync_fail.status is S.FAILED and async_fail.status is S.FAILED
    assert sync_fail.provider_message_id is None and async_fail.provider_message_id
    def shape(r: Any) -> tuple[Any, ...]:
        return (r.error_code, r.error_class, r.error_text)

    assert shape(sync_fail) == shape(async_fail)
    assert shape(sync_fail)[:2] == (131047, "outside_window") and "24 hours" in (sync_fail.error_text or "")
    fb = await env.row(replaced)
    assert fb.status is S.READ
    sent = env.emu.message(fb.provider_message_id or "")
    assert sent.type == "template" and sent.content["name"] == "hello_world"
    assert (await env.row(ok)).status is S.READ
    assert build_callback_data(never) not in env.emu.sends_by_callback_data()


async def test_invalid_recipients_and_templates_fail_with_reasons(env: OutboxEnv) -> None:
    hello = {"name": "hello_world", "language": {"code": "en_US"}}
    bad_number = await env.enqueue("12", "template", hello)
    unknown_user = await env.enqueue("", "template", hello, recipient="US.99999999999999999")
    missing = await env.enqueue("34630000001", "template", {"name": "nope", "language": {"code": "en_US"}})
    empty = await env.enqueue("34630000002", "template", {
        "name": "order_update", "language": {"code": "en_US"},
        "components": [{"type": "body", "parameters": [{"type": "text", "text": "Ana"},
                                                       {"type": "text", "text": " "}]}]})
    short = await env.enqueue("34630000003", "template", {
        "name": "order_update", "language": {"code": "en_US"},
        "components": [{"type": "body", "parameters": [{"type": "text", "text": "Ana"}]}]})
    good = await env.enqueue("34630000004", "template", {
        "name": "order_update", "language": {"code": "en_US"},
        "components": [{"type": "body", "parameters": [{"type": "text", "text": "Ana"},
                                                       {"type": "text", "text": "A-1"}]}]})
    async with env.dispatcher().running() as d:
        await d.drain(10)
        await env.wait_until(lambda rows: all(r.status in (S.FAILED, S.READ) for r in rows))
        await d.maintenance()  # failures applied from webhooks get their class
    r = await env.row(bad_number)
    assert r.status is S.FAILED and r.error_class == "permanent" and r.error_code == 100, r
    r = await env.row(unknown_user)
    assert (r.status, r.error_code, r.error_class) == (S.FAILED, 131026, "invalid_recipient"), r
    r = await env.row(missing)
    assert (r.status, r.error_code, r.error_class) == (S.FAILED, 132001, "template") and "nope" in (r.error_text or "")
    r = await env.row(empty)
    assert (r.status, r.error_code, r.error_class) == (S.FAILED, 132008, "template") and "empty" in (r.error_text or "")
    r = await env.row(short)
    assert (r.status, r.error_code, r.error_class) == (S.FAILED, 132000, "template")
    assert (await env.row(good)).status is S.READ
    counts = env.emu.sends_by_callback_data()
    assert not any(build_callback_data(i) in counts for i in (missing, empty, short))


async def test_expired_token_is_refreshed_then_a_dead_token_fails(env: OutboxEnv) -> None:
    await env.open_windows("34640000001")
    first = await env.enqueue("34640000001", content={"body": "one"})
    async with env.dispatcher().running() as d:
        await d.drain(10)
        env.tokens.append(env.emu.rotate_token())  # the old token expires; the provider now has a new one
        second = await env.enqueue("34640000001", content={"body": "two"})
        d.notify()
        await d.drain(10)
        env.emu.expire_token(env.tokens[-1])  # and now no token works
        third = await env.enqueue("34640000001", content={"body": "three"})
        d.notify()
        await d.drain(10)
    assert (await env.row(first)).provider_message_id and (await env.row(second)).provider_message_id
    dead = await env.row(third)
    assert (dead.status, dead.error_class) == (S.FAILED, "token") and dead.error_text, dead


class LostAnswerClient(CloudAPIClient):
    """Sends for real, then loses the answer once per message: Meta accepted it, we do not know."""

    lost: ClassVar[set[str | None]] = set()

    async def send(self, message: Any, *, biz_opaque_callback_data: str | None = None) -> Any:
        result = await super().send(message, biz_opaque_callback_data=biz_opaque_callback_data)
        if biz_opaque_callback_data not in self.lost:
            self.lost.add(biz_opaque_callback_data)
            raise SendTimeout("answer lost after the request was sent")
        return result


async def test_unknown_outcome_is_settled_by_the_status_webhook_not_a_resend(env: OutboxEnv) -> None:
    await env.open_windows("34650000001")
    ids = [await env.enqueue("34650000001", content={"body": f"m{i}"}) for i in range(3)]
    client = LostAnswerClient(phone_number_id=PNID, token=env.tokens[-1], base_url=env.emu.base_url)
    env.clients.append(client)
    retry = RetryPolicy(unknown_grace_s=30.0)  # a resend would only come after 30 s: the webhook must settle it
    async with env.dispatcher(client, retry=retry).running():
        await env.wait_until(lambda rows: all(r.status is S.READ for r in rows), timeout=15)
    assert received_bodies(env, "34650000001") == ["m0", "m1", "m2"]
    assert all(env.emu.sends_by_callback_data()[build_callback_data(i)] == 1 for i in ids)
    async with env.store.read() as conn:
        h = await env.store.outbox.history(conn, ids[0])
    assert h is not None and [a.outcome for a in h.attempts] == ["unknown"]
    assert h.message.outcome_unknown_since is None and h.message.provider_message_id


async def test_pair_limit_backs_off_one_recipient_only(env: OutboxEnv) -> None:
    env.emu.emulator.config.pair_rate_per_s = 1.0
    env.emu.emulator.config.pair_burst = 1
    await env.open_windows("34660000001", "34660000002")
    busy = [await env.enqueue("34660000001", content={"body": f"b{i}"}) for i in range(3)]
    calm = await env.enqueue("34660000002", content={"body": "c"})
    limiters = make_limiters(None, pair_interval_s=0.2, pair_capacity=45)
    cfg = DispatcherConfig(poll_s=0.02, maintenance_s=0.2, retry=RetryPolicy(base_delay_s=0.05))
    d = OutboxDispatcher(env.store, env.client(), limiters=limiters, config=cfg)
    async with d.running():
        await d.drain(20)
    assert received_bodies(env, "34660000001") == ["b0", "b1", "b2"]
    async with env.store.read() as conn:
        hist = [await env.store.outbox.history(conn, i) for i in busy]
        calm_h = await env.store.outbox.history(conn, calm)
    assert any(a.error_code == 131056 for h in hist if h for a in h.attempts)
    assert calm_h is not None and len(calm_h.attempts) == 1


async def test_tier_holds_business_initiated_but_not_service(env: OutboxEnv) -> None:
    hello = {"name": "hello_world", "language": {"code": "en_US"}}
    bi = [await env.enqueue(f"3467000000{i}", "template", hello, business_initiated=True) for i in range(3)]
    await env.open_windows("34670000009")
    service = await env.enqueue("34670000009", content={"body": "reply"})
    async with env.dispatcher(tier_limit=2, tier_recheck_s=30).running():
        await env.wait_until(lambda rows: sum(r.provider_message_id is not None for r in rows) == 3, timeout=10)
        # the held row is handed back, waiting for the tier (its lease cleared)
        await env.wait_until(lambda rows: all(r.claimed_by is None for r in rows if r.status is S.QUEUED))
    rows = {r.id: r for r in await env.rows()}
    assert rows[service].provider_message_id
    waiting = [rows[i] for i in bi if rows[i].status is S.QUEUED]
    assert len(waiting) == 1
    async with env.store.read() as conn:
        from sqlalchemy import select

        from waflow.store.tables import outbound_messages as om

        reason = (await conn.execute(select(om.c.waiting_reason).where(om.c.id == waiting[0].id))).scalar_one()
    assert reason == "tier"


async def test_campaign_pause_resume_done(env: OutboxEnv) -> None:
    contacts = [{"phone": f"+34 680 000 {i:03d}", "first": f"N{i}", "order": f"O{i}"} for i in range(8)]
    contacts.append({"phone": "34680000999", "first": "", "order": "X"})  # empty parameter
    cid = await enqueue_campaign(env.store, name="spring", phone_number_id=PNID, template="order_update",
                                 language="en_US", contacts=contacts, params=["{first}", "{order}"])
    assert await pause_campaign(env.store, cid)
    async with env.dispatcher().running() as d:
        assert await d.claim_due(20) == []  # paused: nothing claimable
        assert env.emu.sent() == []
        assert await resume_campaign(env.store, cid)
        d.notify()
        await d.drain(10)
        async with asyncio.timeout(10):  # the dispatcher's maintenance marks the finished campaign done
            while (progress := await campaign_progress(env.store, cid)) is not None and progress.status != "done":
                await d.maintenance()
    assert progress is not None
    assert (progress.total, progress.sent, progress.failed, progress.status) == (9, 8, 1, "done")
    # each contact got its own parameters (different recipients are sent in parallel: no order among them)
    params = [m.content["components"][0]["parameters"] for m in env.emu.sent()]
    assert [{"type": "text", "text": "N3"}, {"type": "text", "text": "O3"}] in params


async def test_stop_during_a_claim_hands_the_claimed_rows_back(env: OutboxEnv) -> None:
    """stop() arriving while a claim is under way (its transaction committed, the loop not yet told the rows)
    waits for that claim and hands its rows back: none stays leased to a dispatcher that is gone."""
    users = [f"3461000{i:04d}" for i in range(4)]
    await env.open_windows(*users)
    ids = [await env.enqueue(u) for u in users]
    d = env.dispatcher(rate_per_s=0.001)  # the first send books the only slot; the rest wait for theirs
    committed, go_on = asyncio.Event(), asyncio.Event()
    real_claim = d.claim_due

    async def claim_then_pause(limit: int) -> list[Any]:
        rows = await real_claim(limit)
        if rows:
            committed.set()
            await go_on.wait()
        return rows

    d.claim_due = claim_then_pause  # type: ignore[method-assign]
    await d.start()
    await committed.wait()
    stopping = asyncio.create_task(d.stop())
    await asyncio.sleep(0)  # stop() has begun: it has set its flag and is waiting for the claim loop
    go_on.set()
    await stopping
    rows = {r.id: r for r in await env.rows()}
    assert [rows[i].claimed_by for i in ids] == [None] * len(ids)
    unsent = [i for i in ids if rows[i].status is S.QUEUED]
    assert len(unsent) >= len(ids) - 1  # at most the first got a slot before the stop
    assert [rows[i].outcome_unknown_since for i in unsent] == [None] * len(unsent)  # handed back, not lost


async def test_a_resend_after_an_unknown_outcome_waits_for_the_status_backlog(env: OutboxEnv) -> None:
    """The gate before resending a send whose outcome is unknown: held while a status received before its grace
    ended is still pending in the inbox; when that status settles the row, nothing is sent."""
    from datetime import timedelta

    from sqlalchemy import update

    from waflow.store import utcnow
    from waflow.store.inbox import NewInboundEvent
    from waflow.store.tables import outbound_messages as om

    await env.open_windows("34640000001")
    oid = await env.enqueue("34640000001", content={"body": "maybe sent already"})
    now = utcnow()
    async with env.store.begin() as conn:  # as the recovery of a dead dispatcher's lease leaves it
        await conn.execute(update(om).where(om.c.id == oid).values(
            outcome_unknown_since=now - timedelta(seconds=90), due_at=now - timedelta(seconds=1),
            waiting_reason="unknown_outcome"))
        [event_id] = await env.store.inbox.insert_events(conn, [NewInboundEvent(
            "st:wamid.LATE:sent", "status", PNID, {}, now - timedelta(seconds=5), provider_message_id="wamid.LATE")])
    d = env.dispatcher()
    assert not d._intake_behind()  # no webhook intake in this process: nothing to wait for
    d.intake_calm_for = lambda: 1.0  # the intake of this process fell behind a second ago: hold
    assert d._intake_behind()
    d.intake_calm_for = lambda: 60.0
    assert not d._intake_behind()
    async with env.store.read() as conn:
        assert await env.store.inbox.oldest_pending_status_at(conn) == now - timedelta(seconds=5)
    assert await d._statuses_behind(now)  # received before the grace ended, not applied: hold
    assert not await d._statuses_behind(now - timedelta(seconds=10))  # received after it: does not count

    # the status is applied meanwhile and settles the row: the resend is called off, nothing is sent
    async with env.store.begin() as conn:
        await env.store.inbox.mark_done(conn, [event_id])
        await conn.execute(update(om).where(om.c.id == oid).values(status="sent", provider_message_id="wamid.LATE"))
    d._backlog_read_at = -1e18  # the next look reads the inbox again (it reads at most every 250 ms)
    assert not await d._statuses_behind(now)
    assert not await d._may_resend(oid, now)
    assert build_callback_data(oid) not in env.emu.sends_by_callback_data()
