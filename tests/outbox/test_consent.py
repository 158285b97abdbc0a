"""The consent rule (`waflow.outbox.consent`) as a function of time, and the dispatcher applying it to rows
queued before the contact opted out (a real store, the emulator on a real socket)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from waflow.outbox import campaign_progress, enqueue_campaign
from waflow.outbox.consent import OPTED_OUT, Consent, refusal
from waflow.store import utcnow

PNID = "106540352242922"  # the emulator's number (conftest.PNID)
OutboxEnv = Any  # conftest.OutboxEnv: test modules cannot import the conftest under importlib mode
T0 = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
STOP = Consent(opted_out=True, opted_out_at=T0, last_inbound_at=T0)  # the stop word is the last message


def test_not_opted_out_or_unknown_is_never_refused() -> None:
    assert refusal(None, T0) is None
    assert refusal(Consent(opted_out=False), T0, campaign=True) is None


def test_after_a_stop_word_only_its_confirmation_goes() -> None:
    assert refusal(STOP, T0 + timedelta(seconds=1), notice=True) is None
    reason = refusal(STOP, T0 + timedelta(seconds=1))
    assert reason is not None and "opted out" in reason and "opt in again" in reason
    assert refusal(STOP, T0 + timedelta(days=3)) is not None


def test_a_message_written_after_the_opt_out_opens_a_conversation_for_24_hours() -> None:
    wrote = Consent(opted_out=True, opted_out_at=T0, last_inbound_at=T0 + timedelta(hours=1))
    assert refusal(wrote, T0 + timedelta(hours=2)) is None
    assert refusal(wrote, T0 + timedelta(hours=24, minutes=59)) is None
    assert refusal(wrote, T0 + timedelta(hours=25)) is not None, "the conversation's window closed"
    reason = refusal(wrote, T0 + timedelta(hours=2), campaign=True)
    assert reason is not None and "campaign" in reason, "a campaign never reaches an opted-out contact"


def test_a_message_written_before_the_opt_out_does_not_count() -> None:
    earlier = Consent(opted_out=True, opted_out_at=T0, last_inbound_at=T0 - timedelta(minutes=5))
    assert refusal(earlier, T0 + timedelta(minutes=1)) is not None
    same_second = Consent(opted_out=True, opted_out_at=T0, last_inbound_at=T0)
    assert refusal(same_second, T0 + timedelta(minutes=1)) is not None


async def test_rows_queued_before_an_opt_out_are_refused_at_dispatch(env: OutboxEnv) -> None:
    """A reply and a campaign row wait in the queue; the contact opts out; the dispatcher sends neither, marks
    them `opted_out`, and the campaign reports its row as skipped while the other recipient gets theirs."""
    quitter, stayer = "34630000001", "34630000002"
    await env.open_windows(quitter, stayer)
    reply = await env.enqueue(quitter, content={"body": "your order shipped"})
    template = {"name": "hello_world", "language": {"code": "en_US"}}
    cid = await enqueue_campaign(env.store, name="promo", phone_number_id=PNID, template="hello_world",
                                 language="en_US", contacts=[{"phone": quitter}, {"phone": stayer}])
    async with env.store.begin() as conn:
        contact = await env.store.contacts.get(conn, PNID, quitter)
        assert contact is not None
        change = await env.store.consent.set(conn, contact, opted_out=True, source="api", actor="test",
                                             detail="asked by phone", at=utcnow())
    assert change.changed and change.contact.opted_out
    async with env.dispatcher().running():
        await env.wait_until(lambda rows: all(r.status.value != "queued" for r in rows))
    rows = {r.id: r for r in await env.rows()}
    assert rows[reply].status.value == "failed" and rows[reply].error_class == OPTED_OUT
    assert rows[reply].error_text is not None and "opted out" in rows[reply].error_text
    assert env.emu.user(quitter).received() == [], "nothing reached the contact who opted out"
    assert [m.type for m in env.emu.user(stayer).received()] == ["template"]
    assert template["name"] == env.emu.user(stayer).received()[0].content["name"]
    progress = await campaign_progress(env.store, cid)
    assert progress is not None
    assert (progress.sent, progress.skipped, progress.failed) == (1, 1, 0)
    async with env.store.read() as conn:
        history = await env.store.consent.history(conn, contact.id)
    assert [(e.action, e.source, e.actor, e.detail) for e in history] == [("opt_out", "api", "test", "asked by phone")]


async def test_opting_out_twice_records_one_change(env: OutboxEnv) -> None:
    await env.open_windows("34630000003")
    async with env.store.begin() as conn:
        contact = await env.store.contacts.get(conn, PNID, "34630000003")
        assert contact is not None
        first = await env.store.consent.set(conn, contact, opted_out=True, source="api")
        again = await env.store.consent.set(conn, contact, opted_out=True, source="api")
        back = await env.store.consent.set(conn, again.contact, opted_out=False, source="keyword", detail="start")
    assert (first.changed, again.changed, back.changed) == (True, False, True)
    assert not back.contact.opted_out and back.contact.opted_out_at is None
    async with env.store.read() as conn:
        history = await env.store.consent.history(conn, contact.id)
    assert [e.action for e in history] == ["opt_in", "opt_out"], "newest first, one row per change"


async def test_an_opt_out_recorded_while_a_row_waits_for_its_slot_stops_it(env: OutboxEnv) -> None:
    """Claimed rows wait for the throughput limiter (2 msg/s here); the last recipient opts out after the claim:
    the row is checked again just before it would leave, and refused."""
    users = [f"3463100000{k}" for k in range(4)]
    await env.open_windows(*users)
    ids = [await env.enqueue(u, content={"body": f"update {u}"}) for u in users]
    async with env.dispatcher(rate_per_s=2).running():
        await env.emu.user(users[0]).wait_for_received(1, timeout=10)  # the claim took all four
        async with env.store.begin() as conn:
            last = await env.store.contacts.get(conn, PNID, users[-1])
            assert last is not None
            await env.store.consent.set(conn, last, opted_out=True, source="api", at=utcnow())
        await env.wait_until(lambda rows: all(r.status.value != "queued" for r in rows))
    refused = await env.row(ids[-1])
    assert (refused.status.value, refused.error_class) == ("failed", OPTED_OUT)
    assert env.emu.user(users[-1]).received() == []
    assert all(len(env.emu.user(u).received()) == 1 for u in users[:-1])
