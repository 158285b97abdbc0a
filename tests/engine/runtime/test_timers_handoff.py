"""Timers (wait, reply timeout, expiry) through the scheduler with a controlled clock; handoff; versions."""

from __future__ import annotations

from sqlalchemy import select

from waflow.engine.runtime import agent_reply, end_session, hand_back
from waflow.store.tables import timers

from .conftest import Rig, texts

NAP = """
id: nap
triggers: [{keyword: nap}]
start: first
session_timeout: 2d
nodes:
  first: {type: message, text: going to sleep, next: sleep}
  sleep: {type: wait, duration: 1h, next: woke}
  woke: {type: message, text: "woke up, {{ contact.name }}", next: ask}
  ask:
    type: question
    text: Your email?
    validate: email
    save_as: email
    timeout: 10m
    on_timeout: late
    next: bye
  late: {type: message, text: too late, next: bye}
  bye: {type: end}
"""


async def test_wait_survives_restart_and_fires_once_then_reply_timeout(rig: Rig) -> None:
    await rig.deploy(NAP)
    cy = rig.emu.user("34600222333", name="Cy")
    await cy.send_text("nap")
    await rig.settle()
    assert texts(cy) == ["going to sleep"]
    await cy.send_text("are you there?")  # sleeping: kept, not routed
    await rig.settle()
    assert texts(cy) == ["going to sleep"]
    await rig.restart_engine()  # a process restart in the middle of the wait
    rig.clock.advance(minutes=59)
    await rig.tick()
    assert texts(cy) == ["going to sleep"]
    rig.clock.advance(minutes=2)
    await rig.tick()
    await rig.tick()  # a second tick (and a second scheduler) fires nothing more
    other = rig.new_worker()
    await other.run_until_idle()
    await rig.settle()
    assert texts(cy) == ["going to sleep", "woke up, Cy", "Your email?"]
    async with rig.store.read() as conn:
        states = [r.state for r in await conn.execute(select(timers.c.state).order_by(timers.c.id))]
    assert states == ["fired", "pending"]
    rig.clock.advance(minutes=11)  # the question's timeout
    await rig.tick()
    assert texts(cy)[-1] == "too late"
    [session] = await rig.session_rows()
    assert session["state"] == "ended" and session["end_reason"] == "completed"


async def test_answer_cancels_timeout_and_expired_session_ends_cleanly(rig: Rig) -> None:
    flow = NAP.replace("session_timeout: 2d", "session_timeout: 30m").replace("1h", "1m")
    await rig.deploy(flow.replace("timeout: 10m", "timeout: 1d"))
    di = rig.emu.user("34600222444", name="Di")
    await di.send_text("nap")
    await rig.settle()
    rig.clock.advance(minutes=2)
    await rig.tick()
    await di.send_text("di@example.com")
    await rig.settle()
    [session] = await rig.session_rows()
    assert session["end_reason"] == "completed" and session["vars"]["email"] == "di@example.com"
    async with rig.store.read() as conn:
        states = [r.state for r in await conn.execute(select(timers.c.state).order_by(timers.c.id))]
    assert states == ["fired", "cancelled"]
    # a second session that idles past its timeout: ended by the scheduler, nothing sent, no restart
    await di.send_text("nap")
    await rig.settle()
    rig.clock.advance(minutes=2)
    await rig.tick()
    sent = len(di.received())
    rig.clock.advance(minutes=45)
    await rig.tick()
    await rig.tick()
    rows = await rig.session_rows()
    assert [r["end_reason"] for r in rows] == ["completed", "expired"]
    assert len(di.received()) == sent


HELP = """
id: help
triggers: [{keyword: help}]
start: h
nodes:
  h: {type: handoff, text: "Connecting you to a person", queue: support, note: "{{ contact.name }} needs help",
      then: after}
  after: {type: message, text: Back with the bot, next: fin}
  fin: {type: end}
"""


async def test_handoff_agent_reply_hand_back(rig: Rig) -> None:
    await rig.deploy(HELP)
    ed = rig.emu.user("34600333444", name="Ed")
    await ed.send_text("help")
    await rig.settle()
    [session] = await rig.session_rows()
    assert session["state"] == "handoff" and session["runtime"]["handoff"]["note"] == "Ed needs help"
    await ed.send_text("my order is late")  # stored, not routed to the flow
    await rig.settle()
    assert texts(ed) == ["Connecting you to a person"]
    async with rig.store.begin() as conn:
        await agent_reply(conn, session["id"], "Let me check")
    await rig.settle()
    assert texts(ed)[-1] == "Let me check"
    async with rig.store.begin() as conn:
        await hand_back(conn, session["id"])
    await rig.settle()
    assert texts(ed)[-1] == "Back with the bot"
    [session] = await rig.session_rows()
    assert session["state"] == "ended"


async def test_global_commands_and_end_session(rig: Rig) -> None:
    await rig.deploy(HELP.replace("help}]", "help}, {any_first_message: true}]"))
    fay = rig.emu.user("34600333555", name="Fay")
    await fay.send_text("AGENT")  # no session: a handoff outside any flow
    await rig.settle()
    assert texts(fay) == ["A person will answer you shortly."]
    [s1] = await rig.session_rows()
    assert s1["state"] == "handoff" and s1["flow_id"] == "_agent"
    async with rig.store.begin() as conn:
        assert await end_session(conn, s1["id"], "admin")
        assert not await end_session(conn, s1["id"], "admin")
    await fay.send_text("restart")  # no session: routed as a first message
    await rig.settle()
    assert texts(fay)[-1] == "Connecting you to a person"
    await fay.send_text("stop")
    await rig.settle()
    assert texts(fay)[-1].startswith("You will not receive")
    rows = await rig.session_rows()
    assert [r["end_reason"] for r in rows] == ["admin", "opt_out"]
    async with rig.store.read() as conn:
        contact = await rig.store.contacts.get(conn, rig.emu.config.phone_number_id, fay.wa_id)
    assert contact is not None and contact.opted_out


V1 = """
id: greet
triggers: [{keyword: hi}]
start: ask
nodes:
  ask: {type: question, text: "v1: name?", save_as: name, next: bye}
  bye: {type: message, text: "v1: bye {{ vars.name }}", next: fin}
  fin: {type: end}
"""


async def test_version_pinning(rig: Rig) -> None:
    assert await rig.deploy(V1) == 1
    assert await rig.deploy(V1) == 1  # same content: same version, no new row
    gus = rig.emu.user("34600444555", name="Gus")
    await gus.send_text("hi")
    await rig.settle()
    assert await rig.deploy(V1.replace("v1:", "v2:")) == 2
    hal = rig.emu.user("34600444666", name="Hal")
    await hal.send_text("hi")
    await rig.settle()
    await gus.send_text("Gus")
    await hal.send_text("Hal")
    await rig.settle()
    assert texts(gus) == ["v1: name?", "v1: bye Gus"]
    assert texts(hal) == ["v2: name?", "v2: bye Hal"]
    rows = await rig.session_rows()
    assert rows[0]["flow_version"] != rows[1]["flow_version"]
