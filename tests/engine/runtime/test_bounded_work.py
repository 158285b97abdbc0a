"""Bounded work per contact (issue 16): fair rounds and the backlog cap, templates over budget, regexes in
linear time, the http node's whole-call timeout, and the SSRF guard's smaller holes — over real sockets."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime

import httpx
import orjson
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select

from waflow.canonical import ContactRef, InboundMessage
from waflow.engine.runtime import EngineConfig, EngineWorker, events, http_guard
from waflow.engine.runtime.batch import WindowRow, pick_fair
from waflow.store import NewInboundEvent, Store
from waflow.store.tables import inbound_events, outbound_messages, sessions

from .conftest import PNID, Rig, deploy, texts

ECHO = """
id: echo
triggers: [{any_first_message: true}]
start: say
nodes:
  say: {type: message, text: "got {{ message.text }}", next: fin}
  fin: {type: end}
"""
A, B = "34611000001", "34611000002"


def _metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _message(wa_id: str, n: int) -> NewInboundEvent:
    now = datetime.now(UTC)
    msg = InboundMessage(
        phone_number_id=PNID, message_id=f"wamid.{wa_id}.{n}", timestamp=now, type="text",
        contact=ContactRef(wa_id=wa_id), text=str(n),
    )  # fmt: skip
    return NewInboundEvent.from_message(msg, now)


async def _queue(store: Store, wa_id: str, count: int, *, timer_after: int | None = None) -> None:
    async with store.begin() as conn:
        await store.contacts.upsert_from_inbound(conn, PNID, ContactRef(wa_id=wa_id), None)
        rows = [_message(wa_id, n) for n in range(count)]
        if timer_after is not None:  # an engine event of the contact's, queued among (and beyond) its messages
            timer = events.engine_event(
                f"timer:{wa_id}", PNID, wa_id, {"kind": "wait", "node": "x", "seq": 0}, datetime.now(UTC)
            )
            rows.insert(timer_after, timer)
        await store.inbox.insert_events(conn, rows)


async def _states(store: Store, wa_id: str) -> dict[str, int]:
    async with store.read() as conn:
        rows = await conn.execute(select(inbound_events.c.state).where(inbound_events.c.contact_key == wa_id))
        out: dict[str, int] = {}
        for (state,) in rows:
            out[state] = out.get(state, 0) + 1
        return out


async def _replies(store: Store, wa_id: str) -> list[str]:
    async with store.read() as conn:
        rows = await conn.execute(
            select(outbound_messages.c.content)
            .where(outbound_messages.c.contact_key == wa_id)
            .order_by(outbound_messages.c.id)
        )
        return [content["body"] for (content,) in rows]


async def test_one_contacts_backlog_takes_turns_and_is_capped(store: Store, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="waflow.engine.runtime.worker")
    await deploy(store, ECHO)
    await _queue(store, A, 300, timer_after=120)  # a flood from A (and one engine event of A's past the cap) ...
    await _queue(store, B, 1)  # ... then B writes once
    worker = EngineWorker(store, EngineConfig(batch_size=16, turn_share=4, max_pending_per_contact=50))
    shed_before = _metric("waflow_engine_shed_total", reason="backlog_cap")
    deferred_before = _metric("waflow_engine_deferred_total", reason="turn_share")

    assert await worker.run_once() == 16  # A alone in sight: a whole round; A's messages over the cap set aside
    assert await _states(store, A) == {"done": 16, "pending": 35, "dead": 250}  # 34 messages and the engine event
    assert await worker.run_once() == 16  # A's turns and B's: B did not wait behind A's backlog
    assert await _states(store, A) == {"done": 31, "pending": 20, "dead": 250}
    assert await _states(store, B) == {"done": 1}
    assert await _replies(store, B) == ["got 0"]

    await worker.run_until_idle(20)
    assert await _states(store, A) == {"done": 51, "dead": 250}  # 50 messages and the engine event, in order
    assert await _replies(store, A) == [f"got {n}" for n in range(50)]
    async with store.read() as conn:
        errors = {e for (e,) in await conn.execute(
            select(inbound_events.c.error).where(inbound_events.c.state == "dead"))}  # fmt: skip
    assert len(errors) == 1 and next(iter(errors)).startswith("over_backlog_cap: more than 50 messages")
    assert _metric("waflow_engine_shed_total", reason="backlog_cap") - shed_before == 250
    assert _metric("waflow_engine_deferred_total", reason="turn_share") > deferred_before
    assert "250 newer ones set aside" in caplog.text and "takes turns with other contacts" in caplog.text
    assert worker.shed == 250


async def test_a_stop_word_beyond_the_cap_is_still_heard(store: Store) -> None:
    """A flood then STOP: the messages over the cap are set aside, the stop word is not (an opt-out must count)."""
    await deploy(store, ECHO)
    await _queue(store, A, 120)
    async with store.begin() as conn:
        now = datetime.now(UTC)
        stop = InboundMessage(phone_number_id=PNID, message_id=f"wamid.{A}.stop", timestamp=now, type="text",
                              contact=ContactRef(wa_id=A), text="STOP")
        await store.inbox.insert_events(conn, [NewInboundEvent.from_message(stop, now)])
    worker = EngineWorker(store, EngineConfig(batch_size=16, turn_share=4, max_pending_per_contact=50))
    await worker.run_until_idle(20)
    assert await _states(store, A) == {"done": 51, "dead": 70}
    async with store.read() as conn:
        contact = await store.contacts.get(conn, PNID, A)
    assert contact is not None and contact.opted_out, "the STOP after the flood opted the contact out"


async def test_without_the_cap_every_message_is_run_in_fair_turns(store: Store) -> None:
    await deploy(store, ECHO)
    await _queue(store, A, 200)
    await _queue(store, B, 1)
    worker = EngineWorker(store, EngineConfig(batch_size=16, turn_share=4, max_pending_per_contact=1000))
    rounds = 0
    while (await _states(store, B)).get("done") != 1:
        assert await worker.run_once() > 0
        rounds += 1
    assert rounds <= 2, rounds  # not after A's 200 (13 rounds of 16)
    await worker.run_until_idle(30)
    assert await _states(store, A) == {"done": 200}
    assert await _replies(store, A) == [f"got {n}" for n in range(200)]  # in order, none lost


async def test_a_round_takes_no_further_event_after_its_time(sqlite_store: Store) -> None:
    """SQLite: a round is one transaction holding the write lock; past `round_seconds` the rest waits."""
    await deploy(sqlite_store, ECHO)
    for n in range(3):
        await _queue(sqlite_store, f"3461200000{n}", 1)
    worker = EngineWorker(sqlite_store, EngineConfig(round_seconds=1e-9))
    before = _metric("waflow_engine_deferred_total", reason="round_time")
    assert [await worker.run_once() for _ in range(3)] == [1, 1, 1]  # one event at least, then the time is up
    assert _metric("waflow_engine_deferred_total", reason="round_time") - before == 3  # 2 contacts, then 1


def test_pick_fair_takes_turns_keeps_each_queue_a_prefix_and_fills_the_round() -> None:
    a, b, c, busy = ("p", "a"), ("p", "b"), ("p", "c"), ("p", "busy")
    window = [WindowRow(i, a, "message") for i in range(1, 11)]  # a's backlog: ids 1-10
    window += [WindowRow(11, busy, "message"), WindowRow(12, b, "message"), WindowRow(13, c, "message"),
               WindowRow(14, b, "other")]  # fmt: skip
    pick = pick_fair(window, limit=8, share=2, skip={busy})
    assert pick.per_contact == {a: 5, b: 2, c: 1}  # a 2, b 2, c 1, then a again (the round has room)
    assert pick.ids == [1, 2, 3, 4, 5, 12, 13, 14] and pick.up_to == 14
    assert pick.capped == [a]  # a's events 6-10 wait for a later round
    alone = pick_fair(window[:10], limit=8, share=2)
    assert alone.ids == list(range(1, 9)) and alone.capped == [a]  # alone, a contact gets a whole round
    assert pick_fair(window[:3], limit=8, share=2).capped == []  # all taken: nothing held back


# ---- templates over budget, regexes: the process keeps answering ----

HEAVY = """
id: heavy
triggers: [{keyword: sort}]
start: big
nodes:
  big:  # heavy for any message; it reads the message, so only running it shows that (not the deploy's trial)
    type: message
    text: "{% for i in range(300) %}{{ (range(10000) | list | sort)[message.text | length] }}{% endfor %}"
    next: fin
  fin: {type: end}
"""
HELLO = """
id: hello
triggers: [{keyword: hi}]
start: say
nodes:
  say: {type: message, text: "hello {{ contact.name }}", next: fin}
  fin: {type: end}
"""
EVIL = """
id: evil
triggers: [{regex: '^(a+)+$'}]
start: ask
nodes:
  ask: {type: question, text: "code?", validate: {regex: '^(a+)+$'}, retries: 0, save_as: code, next: ok,
        on_fail: bad}
  ok: {type: message, text: "ok", next: fin}
  bad: {type: message, text: "bad code", next: fin}
  fin: {type: end}
"""


@contextlib.asynccontextmanager
async def loop_lag() -> AsyncIterator[list[float]]:
    """The longest time the event loop went without a turn, while inside (as `/healthz` would feel it)."""
    worst = [0.0]
    stop = asyncio.Event()

    async def tick() -> None:
        last = time.perf_counter()
        while not stop.is_set():
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            worst[0] = max(worst[0], now - last - 0.005)
            last = now

    task = asyncio.create_task(tick())
    try:
        yield worst
    finally:
        stop.set()
        await task


async def test_a_template_over_budget_fails_its_node_and_stalls_nothing(rig: Rig) -> None:
    # the deadlines far away: the work budget stops it, whatever else this machine is doing
    rig.config = rig.config.model_copy(update={"expression_timeout": 10.0, "event_expression_timeout": 10.0})
    await rig.restart_engine()
    await rig.deploy(HEAVY)
    await rig.deploy(HELLO)
    ivy, jo = rig.emu.user("34600111001", name="Ivy"), rig.emu.user("34600111002", name="Jo")
    before = _metric("waflow_engine_expression_limits_total", limit="work")
    async with loop_lag() as lag:
        await ivy.send_text("sort", wait=False)
        await jo.send_text("hi", wait=False)
        await rig.settle()
    assert texts(jo) == ["hello Jo"] and texts(ivy) == []
    [heavy] = [r for r in await rig.session_rows() if r["flow_id"] == "heavy"]
    assert heavy["end_reason"] == "error"
    assert "node 'big'" in heavy["last_error"] and "limit exceeded" in heavy["last_error"]
    assert "500,000 units" in heavy["last_error"]
    assert _metric("waflow_engine_expression_limits_total", limit="work") == before + 1
    assert lag[0] < 0.5, lag[0]  # before: seconds (the work itself, on the loop); now the thread does it


async def test_catastrophic_regexes_stall_nothing(rig: Rig) -> None:
    await rig.deploy(EVIL)
    await rig.deploy(HELLO)
    ivy, jo = rig.emu.user("34600111003", name="Ivy"), rig.emu.user("34600111004", name="Jo")
    evil = "a" * 26 + "!"  # 27 characters
    async with loop_lag() as lag:
        await ivy.send_text("a" * 27)  # starts the flow (the trigger matches)
        await rig.settle()
        await ivy.send_text(evil, wait=False)  # the question's rule
        await jo.send_text(evil, wait=False)  # the trigger
        await jo.send_text("hi", wait=False)
        await rig.settle()
    assert texts(ivy) == ["code?", "bad code"]
    assert texts(jo) == ["hello Jo"]
    assert lag[0] < 0.5, lag[0]  # before: 27 characters held the process for seconds (backtracking)


# ---- the http node: a deadline for the whole call, its URL's query kept, the guard's holes ----

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@contextlib.asynccontextmanager
async def listener(handler: Handler) -> AsyncIterator[str]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), 1)


async def _head(reader: asyncio.StreamReader) -> str:
    return (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")


async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Headers at once, then a 30-byte body one byte every 0.1 s (3 s): never 0.5 s without a byte."""
    with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
        await _head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 30\r\n\r\n")
        for _ in range(30):
            writer.write(b"x")
            await writer.drain()
            await asyncio.sleep(0.1)  # the server's pace, not the test waiting
    writer.close()


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answers the request target (path and query) as JSON."""
    head = await _head(reader)
    body = orjson.dumps({"target": head.split(" ", 2)[1]})
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
                 + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)  # fmt: skip
    await writer.drain()
    writer.close()


LOCAL = frozenset({"127.0.0.1"})


async def test_the_timeout_covers_the_whole_call_not_each_read() -> None:
    async with listener(trickle) as base, httpx.AsyncClient() as client:
        started = time.perf_counter()
        answer = await http_guard.call(client, {"method": "GET", "url": base, "timeout": 0.5},
                                       allow_hosts=LOCAL, max_bytes=10_000)  # fmt: skip
        took = time.perf_counter() - started
    assert answer == {"error": "timeout"}
    assert took < 1.5, took


async def test_waiting_for_a_call_slot_is_part_of_the_timeout() -> None:
    slots = asyncio.Semaphore(1)
    async with listener(echo) as fast, httpx.AsyncClient() as client:
        await slots.acquire()  # every slot held (by slow calls of other conversations)
        started = time.perf_counter()
        answer = await http_guard.call(client, {"method": "GET", "url": fast, "timeout": 0.3},
                                       allow_hosts=LOCAL, max_bytes=10_000, slots=slots)  # fmt: skip
        assert answer == {"error": "timeout"} and time.perf_counter() - started < 1.0
        slots.release()
        answer = await http_guard.call(client, {"method": "GET", "url": fast, "timeout": 2},
                                       allow_hosts=LOCAL, max_bytes=10_000, slots=slots)  # fmt: skip
        assert answer["status"] == 200 and not slots.locked()


async def test_the_urls_own_query_string_is_kept() -> None:
    async with listener(echo) as base, httpx.AsyncClient() as client:
        call = {"method": "GET", "url": f"{base}/find?a=1&b=2", "params": {"b": "9", "c": "3"}, "timeout": 5}
        answer = await http_guard.call(client, call, allow_hosts=LOCAL, max_bytes=10_000)
        assert answer["json"] == {"target": "/find?a=1&b=9&c=3"}
        call = {"method": "GET", "url": f"{base}/find?a=1&a=2", "params": {}, "timeout": 5}
        answer = await http_guard.call(client, call, allow_hosts=LOCAL, max_bytes=10_000)
        assert answer["json"] == {"target": "/find?a=1&a=2"}


BAD_LABEL = "http://" + "a" * 64 + ".example/"


@pytest.mark.parametrize(
    ("url", "allow", "says"),
    [
        (BAD_LABEL, frozenset(), "not a valid host name"),
        ("http://a..b.example/", frozenset(), "not a valid host name"),
        ("http://127.0.0.1:99999/", frozenset(), "not valid"),
        ("http://[2002:7f00:1::]/", frozenset(), "non-public"),  # 6to4 of 127.0.0.1
        ("http://[2002:7f00:1::]/", LOCAL, "non-public"),  # allowing 127.0.0.1 is not allowing its 6to4 twin
        ("http://[2002:a9fe:a9fe::1]/", frozenset({"2002:a9fe:a9fe::1"}), "metadata"),  # 6to4 of 169.254.169.254
        ("http://[fec0::1]/", frozenset(), "non-public"),  # site-local
        ("http://[64:ff9b::a9fe:a9fe]/", frozenset({"64:ff9b::a9fe:a9fe"}), "metadata"),  # NAT64
        ("http://[::ffff:169.254.169.254]/", frozenset({"::ffff:169.254.169.254"}), "metadata"),
    ],
)
async def test_the_guard_refuses_cleanly(url: str, allow: frozenset[str], says: str) -> None:
    with pytest.raises(http_guard.Refused, match=says):
        await http_guard.check_url(url, allow)
    async with httpx.AsyncClient() as client:
        answer = await http_guard.call(client, {"method": "GET", "url": url, "timeout": 2},
                                       allow_hosts=allow, max_bytes=1_000)  # fmt: skip
    assert answer["error"].startswith("refused: ") and says in answer["error"]


def test_embedded_ipv4() -> None:
    six = ipaddress.ip_address("2002:7f00:1::")
    assert http_guard.embedded_ipv4(six) == [ipaddress.ip_address("127.0.0.1")]
    assert http_guard.embedded_ipv4(ipaddress.ip_address("8.8.8.8")) == []
    assert not http_guard._private(ipaddress.ip_address("2002:808:808::"))  # 6to4 of a public address


CALL_BAD_HOST = f"""
id: badhost
triggers: [{{keyword: call}}]
start: call
nodes:
  call: {{type: http, url: "{BAD_LABEL}", timeout: 5s, next: fin, on_error: oops}}
  oops: {{type: message, text: "Service down: {{{{ vars.http_error }}}}", next: fin}}
  fin: {{type: end}}
"""


async def test_a_host_that_fails_idna_takes_the_error_path(rig: Rig) -> None:
    await rig.deploy(CALL_BAD_HOST)
    ivy = rig.emu.user("34600111005", name="Ivy")
    await ivy.send_text("call")
    await rig.settle()
    [reply] = texts(ivy)
    assert reply.startswith("Service down: refused:") and "not a valid host name" in reply
    async with rig.store.read() as conn:
        states = [s for (s,) in await conn.execute(select(sessions.c.state))]
    assert states == ["ended"]  # not left running (and recovered, and failing again, after every restart)
