"""Issue 16's attack-pass findings, one check each, on a running `waflow serve`, so that they stay fixed.

Run by the security scenario after its own parts. Each check retries the attack that worked before the fix and
judges by what the store holds and what the process answered: a forged status of another app, events of a
number not configured here (its id spelled differently), a request body nested 300 levels deep, the database
file's mode, `waflow config check` printing the database and Redis passwords, and debug logs carrying the
values of SQL statements.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from waflow.canonical import OutboundMessage
from waflow.emulator import sign
from waflow.server.testing import API_KEY
from waflow.store import utcnow
from waflow.store.outbox import Acceptance
from waflow.store.tables import contacts, inbound_events, status_events

from .harness import Deployment
from .hostile import envelope
from .report import Check

# A second app with its own number, added to the deployment's configuration (its Graph calls fail: nothing here
# sends for it). Its secret signs the forgeries.
OTHER_PNID = "200000000000002"
OTHER_WABA = "200000000000099"
OTHER_SECRET = "findings-other-app-secret"
FORGED_WAMID = "wamid.FINDINGS-A-MESSAGE"


def other_number_toml(token_file: Path) -> str:
    return (f'\n[[numbers]]\nphone_number_id = "{OTHER_PNID}"\nwaba_id = "{OTHER_WABA}"\n'
            f'token = "file:{token_file}"\napp_secret = "{OTHER_SECRET}"\nverify_token = "findings-other-vt"\n')


def _status_body(pnid: str, waba: str, status: str) -> bytes:
    value = {"messaging_product": "whatsapp", "metadata": {"display_phone_number": "1", "phone_number_id": pnid},
             "statuses": [{"id": FORGED_WAMID, "status": status, "timestamp": "1760000100",
                           "recipient_id": "34699000077"}]}
    return json.dumps(envelope(value, pnid=pnid, waba=waba)).encode()


def _message_body(pnid: str, waba: str, wamid: str) -> bytes:
    value = {"messaging_product": "whatsapp", "metadata": {"display_phone_number": "1", "phone_number_id": pnid},
             "contacts": [{"profile": {"name": "Eve"}, "wa_id": "34699000088"}],
             "messages": [{"from": "34699000088", "id": wamid, "timestamp": "1760000000", "type": "text",
                           "text": {"body": "hola"}}]}
    return json.dumps(envelope(value, pnid=pnid, waba=waba)).encode()


async def _post(client: httpx.AsyncClient, url: str, body: bytes, secret: str) -> int:
    r = await client.post(url, content=body, headers={"Content-Type": "application/json",
                                                     "X-Hub-Signature-256": sign(secret, body)})
    return r.status_code


SECRET_TEXT = "findings-private-words-7731"  # a user's message: stored, never in a log line (even at debug)
SECRET_NAME = "Findings Private Name"  # their profile name: stored with the contact, never in a log line


async def scoped_webhooks(dep: Deployment) -> list[Check]:
    """Another app's signed status naming our message id moves nothing; an unconfigured number files nothing.
    Also stores one user message with `SECRET_TEXT`, for the log scan."""
    cfg = dep.emu.config
    store = await dep.open_store()
    try:
        async with store.begin() as conn:  # our number's message, delivered
            oid = await store.outbox.enqueue(conn, cfg.phone_number_id, OutboundMessage(
                to="34699000077", type="text", content={"body": "your order"}), contact_key="34699000077",
                business_initiated=False)
            await store.outbox.record_accepted_many(conn, [Acceptance(oid, FORGED_WAMID, utcnow())])
        url = f"{dep.serve.url}/webhook"
        async with httpx.AsyncClient(timeout=10) as client:
            ours = await _post(client, url, _status_body(cfg.phone_number_id, cfg.waba_id, "delivered"),
                               cfg.app_secret)
            forged = [await _post(client, url, _status_body(OTHER_PNID, OTHER_WABA, s), OTHER_SECRET)
                      for s in ("read", "failed")]
            spellings = ["0" + cfg.phone_number_id, cfg.phone_number_id + " ", "+" + cfg.phone_number_id]
            unknown = [await _post(client, url, _message_body(p, cfg.waba_id, f"wamid.FINDINGS-ALIEN-{i}"),
                                   cfg.app_secret) for i, p in enumerate(spellings)]
            said = _message_body(cfg.phone_number_id, cfg.waba_id, "wamid.FINDINGS-WORDS").replace(
                b'"hola"', json.dumps(SECRET_TEXT).encode()).replace(b'"Eve"', json.dumps(SECRET_NAME).encode())
            stored = await _post(client, url, said, cfg.app_secret)
            sent = await client.post(f"{dep.serve.url}/api/v1/messages", headers={"Authorization": f"Bearer {API_KEY}"},
                                     json={"to": "34699000088", "type": "text", "content": {"body": SECRET_TEXT}})
        async with store.read() as conn:
            row = await store.outbox.get(conn, oid)
            applied = (await conn.execute(select(status_events.c.status).where(
                status_events.c.outbound_id == oid))).scalars().all()
            filed = (await conn.execute(select(inbound_events.c.phone_number_id).where(
                inbound_events.c.provider_message_id.like("wamid.FINDINGS-ALIEN-%")))).scalars().all()
            alien_contacts = (await conn.execute(select(contacts.c.phone_number_id).where(
                contacts.c.phone_number_id.in_(spellings)))).scalars().all()
    finally:
        await store.close()
    status = row.status.value if row is not None else "missing"
    return [
        Check("another app's status never moves our message", ours == 200 and status == "delivered"
              and list(applied) == ["delivered"],
              f"forged read/failed answered {forged}; message {status}, its history {list(applied)}"),
        Check("events of unconfigured numbers never filed", not filed and not alien_contacts
              and all(code == 200 for code in unknown) and stored == 200 and sent.status_code == 202,
              f"{len(spellings)} spellings of our id (leading 0, trailing space, +): {len(filed)} events, "
              f"{len(alien_contacts)} contacts filed"),
    ]


async def deep_json(dep: Deployment) -> Check:
    """A 300-deep `content` was a 500 with a stack trace."""
    body = '{"to": "34699000099", "type": "text", "content": {"body": "x", "x": ' + '{"a":' * 300 + '1' + \
        '}' * 300 + '}}'
    async with httpx.AsyncClient(base_url=dep.serve.url, timeout=10,
                                 headers={"Authorization": f"Bearer {API_KEY}"}) as api:
        r = await api.post("/api/v1/messages", content=body, headers={"Content-Type": "application/json"})
    ok = r.status_code == 422 and "nested deeper" in r.text and "Traceback" not in r.text
    return Check("300-deep request body named, not a 500", ok, f"{r.status_code} {r.text[:120]!r}")


def database_file(dep: Deployment) -> Check:
    """The SQLite file (and its -wal / -shm) was world-readable."""
    path = Path(dep.store_url.split("///", 1)[1]) if dep.store_url.startswith("sqlite") else None
    if path is None:
        return Check("database file private", True, "PostgreSQL: no file")
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in path.parent.glob(path.name + "*")}
    return Check("database file private", bool(modes) and all(m & 0o077 == 0 for m in modes.values()),
                 ", ".join(f"{name} {mode:o}" for name, mode in sorted(modes.items())))


def config_check_passwords(dep: Deployment) -> Check:
    """`waflow config check` printed the PostgreSQL and Redis passwords."""
    config = dep.config.read_text("utf-8")
    probe = dep.folder / "findings-config.toml"
    lines = [line for line in config.splitlines() if not line.startswith(("store_url", "redis_url"))]
    probe.write_text('store_url = "postgresql+asyncpg://waflow:findings-pg-pass@127.0.0.1:5432/test"\n'
                     'redis_url = "redis://:findings-redis-pass@127.0.0.1:6379/0"\n' + "\n".join(lines) + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("WAFLOW_")}
    out = subprocess.run([sys.executable, "-c", "from waflow.cli import main; main()", "config", "check", "-c",
                          str(probe)],
                         capture_output=True, text=True, env=env, timeout=60, check=False)
    text = out.stdout + out.stderr
    leaked = [p for p in ("findings-pg-pass", "findings-redis-pass") if p in text]
    return Check("config check masks database / Redis passwords", out.returncode == 0 and not leaked,
                 f"exit {out.returncode}; leaked {leaked or 'nothing'}")


def debug_values(paths: list[Path], values: list[str]) -> Check:
    """Debug logs carried every SQL statement with its values (message texts, phone numbers)."""
    found = [(p.name, v) for p in paths for v in values if v in p.read_text("utf-8", errors="replace")]
    return Check("no stored value in the logs", not found, f"{len(values)} values × {len(paths)} logs: "
                 f"{found[:3] or 'none found'}")


def findings_tried() -> str:
    return ("issue 16's findings: another app's signed status on our message id, unconfigured number spellings, "
            "a 300 MB body and malformed JSON without a key, half-sent headers, a cross-site post to the emulator, "
            "a template over budget, a pathological regex, one contact's flood, a trickling http response, the "
            "URL's query string, 6to4 / site-local / bad IDNA hosts, a 300-deep body, the database file's mode, "
            "config check passwords, debug logs' SQL values")




# -- intake: credentials before bodies, slow clients ----------------------------------------------------------


async def _raw_exchange(port: int, request: bytes, read_for: float) -> bytes:
    """Send `request` bytes (headers, maybe part of a body) and read what comes back within `read_for` s."""
    import asyncio

    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        try:
            async with asyncio.timeout(read_for):
                return await reader.read(4096)
        except TimeoutError:
            return b""
    finally:
        writer.close()


async def credentials_before_bodies(dep: Deployment) -> Check:
    """A 300 MB POST without a key was read whole before its 401 (142 → 1,053 MB); malformed JSON without a key got
    422. Now: 401 from the headers alone (the body never sent), and 401 for the malformed one."""
    port = dep.serve.port
    huge = (b"POST /api/v1/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 300000000\r\n\r\n{\"to\":")
    first = await _raw_exchange(port, huge, 5.0)
    async with httpx.AsyncClient(base_url=dep.serve.url, timeout=10) as c:
        malformed = await c.post("/api/v1/messages", content=b'{"to": "346',
                                 headers={"Content-Type": "application/json"})
    ok = first.startswith(b"HTTP/1.1 401") and malformed.status_code == 401
    return Check("API key checked before the body", ok,
                 f"300 MB declared, 6 bytes sent: {first[:12].decode(errors='replace')!r}; malformed JSON without a "
                 f"key: {malformed.status_code}")


async def slow_headers(dep: Deployment, deadline_s: float) -> Check:
    """Half-sent headers stayed open indefinitely. Now answered 408 (or closed) within the header deadline."""
    import time

    t0 = time.monotonic()
    got = await _raw_exchange(dep.serve.port, b"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Le", deadline_s + 5)
    took = time.monotonic() - t0
    return Check("half-sent headers get a deadline", took <= deadline_s + 3,
                 f"answered {got[:12].decode(errors='replace')!r} after {took:.1f} s (deadline {deadline_s:g} s)")


async def emulator_control_csrf(dep: Deployment) -> Check:
    """The emulator's control plane took cross-site `text/plain` POSTs (what a browser page may send unasked)."""
    async with httpx.AsyncClient(base_url=dep.emu.base_url, timeout=10) as c:
        r = await c.post("/_emulator/clock", content='{"seconds": 1}',
                         headers={"Content-Type": "text/plain", "Origin": "http://evil.example"})
    return Check("emulator control plane refuses cross-site posts", r.status_code in (403, 415),
                 f"text/plain from another origin → {r.status_code}")


# -- bounded work per contact -----------------------------------------------------------------------------------

HEAVY_FLOW = """
id: heavy
triggers: [{keyword: [heavy]}]
start: big
nodes:
  big: {type: message, text: "{% for i in range(300) %}{{ (range(10000) | list | sort)[0] }}{% endfor %}", next: done}
  done: {type: end}
"""
REGEX_FLOW = """
id: rx
triggers: [{regex: "^(a+)+$"}]
start: said
nodes:
  said: {type: message, text: "matched", next: done}
  done: {type: end}
"""


async def bounded_work(dep: Deployment) -> list[Check]:
    """A heavy `sort` template stalled /healthz 3.9 s; `^(a+)+$` and 27 characters stalled the process 5.6 s; 1,000
    messages of one contact delayed everyone's replies. Now: refused at deploy; linear; the backlog capped."""
    import asyncio
    import time

    async with httpx.AsyncClient(base_url=dep.serve.url, timeout=20,
                                 headers={"Authorization": f"Bearer {API_KEY}"}) as api:
        heavy = await api.post("/api/v1/flows", content=HEAVY_FLOW, headers={"Content-Type": "application/yaml"})
        rx = await api.post("/api/v1/flows", content=REGEX_FLOW, headers={"Content-Type": "application/yaml"})
        user = dep.emu.user("34699100001")
        worst = 0.0

        async def probe(stop: asyncio.Event) -> None:
            nonlocal worst
            while not stop.is_set():
                t0 = time.monotonic()
                await api.get("/healthz")
                worst = max(worst, time.monotonic() - t0)
                await asyncio.sleep(0.05)

        stop = asyncio.Event()
        prober = asyncio.create_task(probe(stop))
        # matches nothing: the catastrophic case for a backtracking engine (this user's first message, so the
        # pattern is tried; the pizza flow's any-first-message takes it after)
        await dep.emu.user("34699100002").send_text("a" * 26 + "!")
        await user.send_text("aaaa")  # another new user: the pattern matches
        try:
            deadline = time.monotonic() + 20
            while not any((m.content or {}).get("body") == "matched" for m in user.received()):
                if time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.05)
        finally:
            stop.set()
            await prober
        got = [m for m in user.received() if (m.content or {}).get("body") == "matched"]
    refused = heavy.status_code == 422 and "limit" in heavy.text
    matched = rx.status_code < 300 and bool(got)
    return [
        Check("a template over its work budget is refused at deploy", refused,
              f"{heavy.status_code} {heavy.text[heavy.text.find('limit') - 40:][:100]!r}"),
        Check("a pathological regex runs in linear time", matched and worst < 1.0,
              f"'^(a+)+$' on 27 characters, then a match; /healthz worst {worst * 1000:.0f} ms"),
    ]


async def backlog_cap(dep: Deployment) -> Check:
    """1,000 messages from one contact left ~950 replies queued with no cap and delayed others' replies to 5.4 s.
    Now another contact's reply does not wait for the flood, and what is over the cap is set aside (counted)."""
    import asyncio
    import time

    flooder, other = dep.emu.user("34699200001"), dep.emu.user("34699200002")
    n = 300
    flood = asyncio.gather(*(flooder.send_text(f"probe {i}", wait=False) for i in range(n)))
    await asyncio.sleep(0)  # the flood's first POSTs are under way
    t0 = time.monotonic()
    await other.send_text("probe")
    await other.wait_for_received(1, timeout=30)
    waited = time.monotonic() - t0
    await flood
    store = await dep.open_store()
    try:
        async with asyncio.timeout(90):
            while True:
                async with store.read() as conn:
                    rows = (await conn.execute(select(inbound_events.c.state, inbound_events.c.error).where(
                        inbound_events.c.contact_key == flooder.wa_id, inbound_events.c.kind == "message"))).all()
                if len(rows) == n and all(r.state in ("done", "dead") for r in rows):
                    break
                await asyncio.sleep(0.2)
    finally:
        await store.close()
    shed = sum(1 for r in rows if r.state == "dead" and (r.error or "").startswith("over_backlog_cap"))
    return Check("one contact's flood does not hold the others up", waited < 5.0 and shed <= n - 100,
                 f"{n} messages from one contact at once: another's reply after {waited:.1f} s; {shed} of the "
                 "flood set aside over the cap of 100 waiting")


__all__: list[Any] = ["SECRET_NAME", "SECRET_TEXT", "backlog_cap", "bounded_work", "config_check_passwords",
                      "credentials_before_bodies", "database_file", "debug_values", "deep_json",
                      "emulator_control_csrf", "findings_tried", "other_number_toml", "scoped_webhooks",
                      "slow_headers"]
