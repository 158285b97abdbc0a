"""http (with the SSRF guard), subflow/goto, on_failed, start_flow, duplicates, loops and bad expressions."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select, update
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from waflow.emulator import serve_asgi
from waflow.engine.runtime import FlowStartRefused, start_flow
from waflow.store.tables import inbound_events, outbound_messages, sessions

from .conftest import PNID, SECRET, Rig, texts

API = """
id: api
triggers: [{keyword: price}]
start: call
nodes:
  call:
    type: http
    method: POST
    url: "{{ flow.vars.base }}/price"
    json: {sku: "{{ message.text }}"}
    timeout: 5s
    save: {price: "{{ response.json.price }}", status: "{{ response.status }}"}
    next: say
    on_error: oops
  say: {type: message, text: "Price: {{ vars.price }} ({{ vars.status }})", next: fin}
  oops: {type: message, text: "Service down: {{ vars.http_error }}", next: fin}
  fin: {type: end}
"""


async def price(request: Request) -> JSONResponse:
    body = await request.json()
    return JSONResponse({"price": 42 if body["sku"] == "price" else 0})


async def test_http_node_allowed_and_refused(rig: Rig) -> None:
    app = Starlette(routes=[Route("/price", price, methods=["POST"])])
    async with serve_asgi(app) as base:
        await rig.deploy(API.replace("start: call", f"start: call\nvars: {{base: '{base}'}}"))
        ivy = rig.emu.user("34600555666", name="Ivy")
        await ivy.send_text("price")
        await rig.settle()
        assert texts(ivy) == ["Price: 42 (200)"]
    for url in ("http://169.254.169.254", "http://10.255.255.1:9", "file:///etc/passwd"):
        await rig.deploy(API.replace("start: call", f"start: call\nvars: {{base: '{url}'}}"))
        await ivy.send_text("price")
        await rig.settle()
        assert texts(ivy)[-1].startswith("Service down: refused"), texts(ivy)[-1]
    rows = await rig.session_rows()
    assert all(r["state"] == "ended" for r in rows)


CALLER = """
id: caller
triggers: [{keyword: sub}]
start: pre
nodes:
  pre: {type: set, vars: {who: caller}, next: call}
  call: {type: subflow, flow: callee, vars: {greeting: "hello {{ contact.name }}"}, save_as: result, next: after}
  after: {type: message, text: "back in {{ vars.who }}: {{ vars.result.answer }}", next: jump}
  jump: {type: goto, flow: other}
"""
CALLEE = """
id: callee
start: ask
nodes:
  ask: {type: question, text: "{{ vars.greeting }}, pick", validate: {choice: ["yes", "no"]}, save_as: answer,
        next: fin}
  fin: {type: end}
"""
OTHER = """
id: other
start: last
nodes:
  last: {type: message, text: "in other, who={{ vars.who }}", next: fin}
  fin: {type: end, reason: other_done}
"""


async def test_subflow_returns_and_goto_flow(rig: Rig) -> None:
    for text in (CALLEE, OTHER, CALLER):
        await rig.deploy(text)
    jo = rig.emu.user("34600666777", name="Jo")
    await jo.send_text("sub")
    await rig.settle()
    assert texts(jo) == ["hello Jo, pick"]
    await jo.send_text("YES")
    await rig.settle()
    assert texts(jo) == ["hello Jo, pick", "back in caller: yes", "in other, who=caller"]
    [session] = await rig.session_rows()
    assert session["end_reason"] == "other_done" and session["flow_id"] == "other"


LOOP_A = """
id: loopa
triggers: [{keyword: loop}]
start: a
nodes:
  a: {type: set, vars: {n: "{{ (vars.n or 0) + 1 }}"}, next: b}
  b: {type: goto, flow: loopb}
"""
LOOP_B = """
id: loopb
start: c
nodes:
  c: {type: goto, flow: loopa}
"""
BAD = """
id: bad
triggers: [{keyword: bad}]
start: s
vars: {zero: 0}
nodes:
  s: {type: message, text: "{{ 10 // vars.zero }}", next: fin}
  fin: {type: end}
"""


async def test_busy_loop_ends_with_loop_and_bad_expression_is_recorded(rig: Rig) -> None:
    for text in (LOOP_A, LOOP_B, BAD):
        await rig.deploy(text)
    kim = rig.emu.user("34600777888", name="Kim")
    await kim.send_text("loop")
    await rig.settle()
    await kim.send_text("bad")
    await rig.settle()
    loop, bad = await rig.session_rows()
    assert loop["end_reason"] == "loop" and "steps without waiting" in loop["last_error"]
    assert bad["end_reason"] == "error" and "node 's'" in bad["last_error"] and "division" in bad["last_error"]
    assert texts(kim) == []
    async with rig.store.read() as conn:
        states = {r.state for r in await conn.execute(select(inbound_events.c.state))}
    assert states == {"done"}


FAILING = """
id: failing
triggers: [{keyword: go}]
start: ask
nodes:
  ask: {type: buttons, text: Pick, buttons: [{id: a, title: A}], next: fin, on_failed: fallback}
  fallback: {type: set, vars: {failed: "{{ vars.delivery_error.code }}"}, next: fin2}
  fin: {type: end}
  fin2: {type: end, reason: delivery_failed}
"""


async def test_on_failed_routes_after_a_permanent_delivery_failure(rig: Rig) -> None:
    await rig.deploy(FAILING)
    lu = rig.emu.user("34600888999", name="Lu")
    rig.emu.faults.set(error_rates={131026: 1.0})
    await lu.send_text("go")
    await rig.settle()
    async with asyncio.timeout(10):
        while (await rig.session_rows())[0]["state"] != "ended":  # noqa: ASYNC110 - polling the database
            await asyncio.sleep(0.05)
    [session] = await rig.session_rows()
    assert session["end_reason"] == "delivery_failed" and session["vars"]["failed"] == 131026


TEMPLATED = """
id: promo
start: t
nodes:
  t: {type: template, name: promo_offer, language: en_US, params: ["{{ vars.code }}"],
      replies: {"YES": "yes", "NO": fin}}
  "yes": {type: message, text: "Great, code {{ vars.code }}", next: fin}
  fin: {type: end}
"""
PLAIN = """
id: plain
start: m
nodes:
  m: {type: message, text: hi, next: fin}
  fin: {type: end}
"""


async def test_start_flow_window_rules_and_template_reply(rig: Rig) -> None:
    await rig.deploy(TEMPLATED)
    await rig.deploy(PLAIN)
    rig.emu.add_template(
        "promo_offer",
        components=[
            {"type": "BODY", "text": "Use code {{1}}", "example": {"body_text": [["X1"]]}},
            {
                "type": "BUTTONS",
                "buttons": [{"type": "QUICK_REPLY", "text": "YES"}, {"type": "QUICK_REPLY", "text": "NO"}],
            },
        ],
    )
    async with rig.store.begin() as conn:
        with pytest.raises(FlowStartRefused, match="must begin with a template"):
            await start_flow(conn, PNID, "34600999000", "plain")
        with pytest.raises(FlowStartRefused, match="not deployed"):
            await start_flow(conn, PNID, "34600999000", "nope")
        started = await start_flow(conn, PNID, "34600999000", "promo", {"code": "X1"})
    assert started.version == 1
    await rig.settle()
    mo = rig.emu.user("34600999000", name="Mo")
    assert texts(mo) == ["template:promo_offer"]
    await mo.tap_template_button(to_message=mo.received()[0].wamid, payload="YES", text="YES")
    await rig.settle()
    assert texts(mo)[-1] == "Great, code X1"
    async with rig.store.begin() as conn:
        contact = await rig.store.contacts.get(conn, PNID, "34600999000")
        assert contact is not None
        await rig.store.consent.set(conn, contact, opted_out=True, source="api")
        with pytest.raises(FlowStartRefused, match="opted out"):
            await start_flow(conn, PNID, "34600999000", "promo")


GREET = """
id: greet
triggers: [{any_first_message: true}]
start: q1
nodes:
  q1: {type: question, text: "first?", save_as: a, next: q2}
  q2: {type: question, text: "second?", save_as: b, next: q3}
  q3: {type: question, text: "third?", save_as: c, next: fin}
  fin: {type: message, text: "{{ vars.a }}-{{ vars.b }}-{{ vars.c }}", next: end}
  end: {type: end}
"""


async def test_quick_and_duplicated_messages_one_session_in_order(rig: Rig) -> None:
    await rig.deploy(GREET)
    rig.emu.webhook_modes(duplicate_rate=1.0)  # every webhook delivered twice
    nia = rig.emu.user("34601000111", name="Nia")
    for word in ("hey", "1", "2", "3"):
        await nia.send_text(word, wait=False)  # while the bot is still replying
    await rig.settle()
    assert texts(nia) == ["first?", "second?", "third?", "1-2-3"]
    rows = await rig.session_rows()
    assert len(rows) == 1 and rows[0]["end_reason"] == "completed"
    # redelivered webhooks change nothing
    async with rig.store.read() as conn:
        n_out = len(list(await conn.execute(select(outbound_messages.c.id))))
    async with httpx.AsyncClient() as client:  # the same webhook bodies again
        for attempt in rig.emu.webhook_attempts[:4]:
            sig = "sha256=" + hmac.new(SECRET.encode(), attempt.body, hashlib.sha256).hexdigest()
            answer = await client.post(
                rig.emu.config.callback_url or "",
                content=attempt.body,
                headers={"Content-Type": "application/json", "X-Hub-Signature-256": sig},
            )
            assert answer.status_code == 200
    await rig.settle()
    async with rig.store.read() as conn:
        assert len(list(await conn.execute(select(outbound_messages.c.id)))) == n_out


async def test_stale_running_session_does_not_block_new_messages(rig: Rig) -> None:
    await rig.deploy(GREET)
    oz = rig.emu.user("34601000222", name="Oz")
    await oz.send_text("hey")
    await rig.settle()
    async with rig.store.begin() as conn:  # as if a worker crashed mid-step, long ago
        await conn.execute(
            update(sessions).values(state="running", waiting_for=None, updated_at=rig.clock() - timedelta(minutes=10))
        )
    await oz.send_text("anyone?")
    await rig.settle()
    rows = await rig.session_rows()
    assert [r["end_reason"] for r in rows] == ["stale", None]
    assert texts(oz) == ["first?", "first?"]
