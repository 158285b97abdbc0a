"""The send gate (`limits.SendGate`): never more than the rate in any sliding window, whatever the pacing — a
burst of late wake-ups waits instead of bunching. In-process on a clock the test moves; Redis on the server's
clock, many concurrent callers through one shared gate."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from redis.asyncio import Redis

from waflow.outbox import InMemorySendGate, RedisSendGate, gate_params, max_in_window

US = 1_000_000


def test_gate_params_round_against_the_caller() -> None:
    assert gate_params(80, 0.005) == (80, 1_005_000)
    assert gate_params(20.5, 0) == (20, 975_610)  # 20 per 20/20.5 s: never more than 20.5/s
    assert gate_params(0.5, 0) == (1, 2_000_000)  # below 1/s: one send per 1/rate s
    with pytest.raises(ValueError, match="rate must be > 0"):
        gate_params(0)


async def test_a_bunch_of_late_senders_is_held_to_the_rate_per_sliding_second() -> None:
    now = [0]
    gate = InMemorySendGate(window_guard_s=0.005, clock_us=lambda: now[0])
    sent: list[int] = []

    async def sender() -> None:  # what the dispatcher does: ask, and wait what the gate says before asking again
        while (wait := await gate.admit("pn", 20)) > 0:
            now[0] += round(wait * US)  # time is the test's: the wait passes at once
        sent.append(now[0])

    for _ in range(50):  # 50 tasks woke late at the same instant (a stalled host)
        await sender()
    assert len(sent) == 50
    assert max_in_window(sent) == 20, "never more than 20 in any 1 s"
    assert max_in_window(sent, 1_005_000) == 20, "nor in 1 s + the guard"
    assert sent[20] - sent[0] == 1_005_000, "the 21st waits exactly until the first leaves the window"


async def test_waits_leave_nothing_behind() -> None:
    now = [0]
    gate = InMemorySendGate(window_guard_s=0, clock_us=lambda: now[0])
    assert [await gate.admit("pn", 2) for _ in range(3)] == [0.0, 0.0, 1.0]
    now[0] += 500_000
    assert await gate.admit("pn", 2) == 0.5, "a refused ask records nothing"
    assert await gate.admit("other", 2) == 0.0, "numbers are apart"


@pytest.mark.redis
async def test_redis_gate_is_one_cap_for_every_caller(redis_client: Redis, redis_prefix: str) -> None:
    """Three gates (three processes) on one Redis: 60 senders asking at once get through 30/s between them,
    judged on the server's clock."""
    gates = [RedisSendGate(redis_client, prefix=redis_prefix, window_guard_s=0.005) for _ in range(3)]
    admitted: list[int] = []

    async def sender(i: int) -> None:
        gate = gates[i % 3]
        while True:
            wait, at = await gate.admit_at("pn", 30)
            if wait == 0:
                admitted.append(at)  # when the server recorded the send
                return
            await asyncio.sleep(wait)

    await asyncio.gather(*(sender(i) for i in range(60)))
    assert len(admitted) == 60
    assert max_in_window(sorted(admitted)) <= 30
    members = await redis_client.zcard(f"{redis_prefix}:gate:pn")
    assert members <= 30, "the log holds one window's sends, no more"
    assert 0 < await redis_client.pttl(f"{redis_prefix}:gate:pn") <= 2_100


async def test_a_stalling_event_loop_does_not_bunch_the_dispatchers_sends(env: Any) -> None:
    """The dispatcher on an event loop that stalls 150 ms every 250 ms (a busy host): tasks wake late after
    each stall, and without the gate their sends bunched past the rate. By waflow's send clock (each attempt's
    start), no sliding second holds more than the rate."""
    import time

    from sqlalchemy import select

    from waflow.canonical import OutboundMessage
    from waflow.store.tables import send_attempts

    template = {"name": "hello_world", "language": {"code": "en_US"}}
    async with env.store.begin() as conn:
        for i in range(70):
            await env.store.outbox.enqueue(conn, PNID, OutboundMessage(to=f"3475{i:07d}", type="template",
                                           content=template), contact_key=f"3475{i:07d}", business_initiated=True)
    done = asyncio.Event()

    async def stall() -> None:
        while not done.is_set():
            time.sleep(0.15)  # noqa: ASYNC251 -- blocks the loop on purpose, as a CPU-bound neighbour would
            await asyncio.sleep(0.1)

    staller = asyncio.create_task(stall())
    try:
        async with env.dispatcher(rate_per_s=20, concurrency=64).running():
            await env.wait_until(lambda rows: all(r.status.value != "queued" for r in rows), timeout=30)
    finally:
        done.set()
        await staller
    async with env.store.read() as conn:
        starts = sorted((await conn.execute(select(send_attempts.c.started_at))).scalars())
    assert len(starts) == 70
    times = [round(t.timestamp() * US) for t in starts]
    assert max_in_window(times) <= 20, max_in_window(times)


PNID = "106540352242922"  # the emulator's number (conftest.PNID)
