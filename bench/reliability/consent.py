"""Consent: opt-outs on every send path. Users write, half of them send STOP while a campaign to everyone is
being sent (at the number's rate, so their rows are still queued); then every business-initiated path is tried
on them: API sends (text, template, text with a fallback template), a flow started from the API, and two more
campaigns; some write again (a conversation of their own: its replies must arrive) and some send START (they
must be reached again). The verdict is read from the emulator: every message a user received after the
confirmation of their STOP is checked against what the consent rule allows — the count of sends to opted-out
contacts must be 0 — and the API, the campaigns' counts and the consent history must say `opted_out`."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from waflow.emulator import EmulatorHandle, SimulatedUser, TemplateSeed

from .harness import deployment
from .report import Check, Result

STOP_NOTICE = "You will not receive messages from us any more."
WELCOME = "Welcome back"
CHAT_FLOW = """
id: chat
triggers: [{any_first_message: true}]
start: got
nodes:
  got: {type: message, text: "Got it: {{ message.text | default('?') }}", next: done}
  done: {type: end}
"""
PROMO_FLOW = """
id: promo
start: offer
nodes:
  offer: {type: template, name: hello_world, language: en_US, next: done}
  done: {type: end}
"""
TEMPLATE = {"name": "hello_world", "language": {"code": "en_US"}}


def _text(msg: Any) -> str:
    content = msg.content if isinstance(msg.content, dict) else {}
    return str(content.get("body", "")) if msg.type == "text" else f"template:{content.get('name', '?')}"


async def _wait(what: str, ok: Any, timeout: float) -> None:  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    while not await ok():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} after {timeout:.0f} s")
        await asyncio.sleep(0.05)


async def _received_text(user: SimulatedUser, text: str, timeout: float) -> None:  # noqa: ASYNC109
    async def ok() -> bool:
        return any(_text(m).startswith(text) for m in user.received())

    await _wait(f"{user.wa_id} never received {text!r}", ok, timeout)


async def _campaign(
    api: httpx.AsyncClient, name: str, users: Sequence[SimulatedUser], timeout: float  # noqa: ASYNC109
) -> dict[str, Any]:
    r = await api.post("/api/v1/campaigns", json={"name": name, "template": "hello_world", "language": "en_US",
                                                   "contacts": [{"phone": u.wa_id} for u in users]})
    r.raise_for_status()
    cid = r.json()["id"]
    box: dict[str, Any] = {}

    async def finished() -> bool:
        box.update((await api.get(f"/api/v1/campaigns/{cid}")).json())
        return bool(box.get("finished"))

    await _wait(f"campaign {name} not finished", finished, timeout)
    return box


async def consent(folder: Path, *, users: int = 20, rate: float = 20.0, timeout: float = 60.0) -> Result:  # noqa: ASYNC109
    t0 = time.monotonic()
    result = Result("consent", f"{users} users, half send STOP during a campaign at {rate:.0f} msg/s; API sends, "
                               "flow starts, 2 more campaigns; some write again, some send START")
    flows = folder / "consent-flows"
    flows.mkdir(parents=True, exist_ok=True)
    (flows / "chat.yaml").write_text(CHAT_FLOW, "utf-8")
    (flows / "promo.yaml").write_text(PROMO_FLOW, "utf-8")
    seeds = [TemplateSeed(name="hello_world", components=[{"type": "BODY", "text": "Hello from us"}])]
    async with deployment(folder, flows=flows, emulator={"throughput_mps": rate, "templates": seeds}) as dep:
        emu: EmulatorHandle = dep.emu
        everyone = [emu.user(f"3465{i:07d}", name=f"C{i}") for i in range(users)]
        quitters, stayers = everyone[: users // 2], everyone[users // 2:]
        talkers = quitters[: len(quitters) // 2]  # write again after STOP: a conversation of their own
        returners = quitters[len(quitters) // 2:]  # send START
        door: list[tuple[str, int, str]] = []  # (what, status, error code) of every API call on an opted-out user
        async with dep.api() as api:
            # A: everyone writes; the chat flow answers
            await asyncio.gather(*(u.send_text("hello", wait=False) for u in everyone))
            await asyncio.gather(*(_received_text(u, "Got it: hello", timeout) for u in everyone))
            # B: a campaign to everyone, and the quitters send STOP while it is being sent
            first = asyncio.create_task(_campaign(api, "first", everyone, timeout * 2))
            await asyncio.gather(*(q.send_text("STOP", wait=False) for q in quitters))
            await asyncio.gather(*(_received_text(q, STOP_NOTICE, timeout) for q in quitters))
            c1 = await first

            async def refused(what: str, call: Any) -> None:
                r = await call
                door.append((what, r.status_code, str(r.json().get("error", "")) if r.content else ""))

            for q in quitters:
                await refused("text", api.post("/api/v1/messages", json={
                    "to": q.wa_id, "type": "text", "content": {"body": "we miss you"}}))
                await refused("template", api.post("/api/v1/messages", json={
                    "to": q.wa_id, "type": "template", "content": TEMPLATE}))
                await refused("text + fallback", api.post("/api/v1/messages", json={
                    "to": q.wa_id, "type": "text", "content": {"body": "x"},
                    "fallback_template": {"name": "hello_world", "language": "en_US"}}))
                await refused("flow start", api.post("/api/v1/flows/promo/start", json={"to": q.wa_id}))
            started = [await api.post("/api/v1/flows/promo/start", json={"to": s.wa_id}) for s in stayers]
            # C: the talkers write again (a second later on the provider's clock: after their STOP's timestamp)
            emu.advance_clock(seconds=1.0)
            await asyncio.gather(*(t.send_text("one more question", wait=False) for t in talkers))
            await asyncio.gather(*(_received_text(t, "Got it: one more question", timeout) for t in talkers))
            answers = [await api.post("/api/v1/messages", json={
                "to": t.wa_id, "type": "text", "content": {"body": "an agent answers"}}) for t in talkers]
            await asyncio.gather(*(_received_text(t, "an agent answers", timeout) for t in talkers))
            c2 = await _campaign(api, "second", everyone, timeout * 2)
            # D: the returners send START; a third campaign reaches them again
            await asyncio.gather(*(r.send_text("START", wait=False) for r in returners))
            await asyncio.gather(*(_received_text(r, WELCOME, timeout) for r in returners))
            c3 = await _campaign(api, "third", everyone, timeout * 2)
            # E: an operator opts a stayer out through the API
            target = stayers[0]
            marked = await api.post(f"/api/v1/contacts/{target.wa_id}/opt-out",
                                    json={"by": "Ana", "note": "asked by phone"})
            await refused("text after API opt-out", api.post("/api/v1/messages", json={
                "to": target.wa_id, "type": "text", "content": {"body": "hello?"}}))
            history = (await api.get(f"/api/v1/contacts/{returners[0].wa_id}/consent")).json()
            metrics = (await api.get("/metrics")).text

    violations: list[str] = []
    for q in quitters:
        got = q.received()
        stop_at = next(i for i, m in enumerate(got) if _text(m).startswith(STOP_NOTICE))
        allowed: set[str] = set()
        if q in talkers:
            allowed |= {"Got it: one more question", "an agent answers"}
        after = [_text(m) for m in got[stop_at + 1:]]
        if q in returners and WELCOME in " ".join(after):
            welcome_at = next(i for i, t in enumerate(after) if t.startswith(WELCOME))
            after = after[:welcome_at]  # opted in again: what follows is theirs
        violations += [f"{q.wa_id}: {t!r}" for t in after if t not in allowed]
    result.checks.append(Check("sends to opted-out contacts", not violations,
                               f"{len(violations)} (every message after a STOP's confirmation checked)"))
    if violations:
        result.notes.append("; ".join(violations[:5]))
    bad_door = [d for d in door if (d[1], d[2]) != (409, "opted_out")]
    result.checks.append(Check("API refuses with 409 opted_out", not bad_door and len(door) == 4 * len(quitters) + 1,
                               f"{len(door) - len(bad_door)}/{len(door)} calls (text, template, fallback, flow start)"))
    if bad_door:
        result.notes.append(f"answered otherwise: {bad_door[:3]}")
    expected = (c2["skipped"], c3["skipped"])
    result.checks.append(Check(
        "campaigns skip opted-out contacts",
        c1["sent"] + c1["skipped"] == users and expected == (len(quitters), len(quitters) - len(returners))
        and c1["failed"] == c2["failed"] == c3["failed"] == 0,
        f"first {c1['sent']} sent / {c1['skipped']} skipped (STOP during it), second {c2['skipped']} skipped of "
        f"{len(quitters)} opted out, third {c3['skipped']} (after {len(returners)} START); failed "
        f"{c1['failed']}/{c2['failed']}/{c3['failed']}",
    ))
    conversation_ok = all(a.status_code == 202 for a in answers) and all(s.status_code == 202 for s in started)
    result.checks.append(Check("their own conversation and opted-in contacts are reached", conversation_ok,
                               f"{len(talkers)} answered after writing again, {len(stayers)} flow starts"))
    actions = [(e["action"], e["source"]) for e in history.get("history", [])]
    api_mark = marked.json() if marked.status_code == 200 else {}
    actor = (api_mark.get("history") or [{}])[0].get("actor") or ""
    result.checks.append(Check(
        "consent history (who, when, how)",
        actions == [("opt_in", "keyword"), ("opt_out", "keyword")] and actor.startswith("key:") and "(Ana)" in actor,
        f"a returner: {actions}; API opt-out by {actor!r}",
    ))
    counted = next((line for line in metrics.splitlines()
                    if line.startswith('waflow_outbox_messages_total{outcome="opted_out"}')), "")
    result.checks.append(Check("metric counts refusals", bool(counted) and float(counted.split()[-1]) > 0,
                               counted or "absent"))
    result.seconds = time.monotonic() - t0
    return result
