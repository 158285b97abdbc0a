"""Security: signature bypass attempts and replays on the webhook; the admin API without / with a wrong key /
another deployment's key / the stored hash; Jinja sandbox escapes through a deployed flow (refused at deploy,
inert at runtime); the `http` node's SSRF guard (loopback, link-local, private, metadata in every spelling)
with and without an allow-list; bounded media downloads; and every log written scanned for secrets."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from waflow.cloudapi import CloudAPIClient, MediaTooLargeError
from waflow.config import hash_api_key
from waflow.emulator import serve_asgi, sign
from waflow.server.testing import API_KEY

from . import findings
from .harness import Deployment, deployment
from .hostile import envelope
from .report import Check, Result

ESCAPES = [
    "{{ ''.__class__.__mro__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{{ lipsum.__globals__['os'].popen('id').read() }}",
    "{{ self.__init__.__globals__ }}",
    "{{ ().__class__.__bases__[0].__subclasses__() }}",
    "{{ contact | attr('__class__') }}",
    "{{ namespace.__init__.__globals__ }}",
    "{% for c in [].__class__.__base__.__subclasses__() %}{{ c }}{% endfor %}",
    "{{ '%s' % contact.__dict__ }}",
    "{{ request.application.__globals__ }}",
    "{% include '/etc/passwd' %}",
    "{{ '{0.__class__}'.format(contact) }}",
]
PROBE_FLOW = """
id: probe
triggers: [{keyword: [probe]}]
start: ask
nodes:
  ask: {type: question, text: "say something", save_as: said, next: echo}
  echo: {type: message, text: "echo {{ vars.said }} / {{ vars[vars.said] | default('none') }}", next: done}
  done: {type: end}
"""
FETCH_FLOW = """
id: fetch
triggers: [{keyword: [fetch]}]
start: ask
nodes:
  ask: {type: question, text: "which url?", save_as: url, next: call}
  call:
    type: http
    method: GET
    url: "{{ vars.url }}"
    timeout: 3s
    save: {code: "{{ response.status }}"}
    next: fetched
    on_error: refused
  fetched: {type: message, text: "fetched {{ vars.code }}", next: done}
  refused: {type: message, text: "refused: {{ vars.http_error }}", next: done}
  done: {type: end}
"""
METADATA_URLS = [
    "http://169.254.169.254/latest/meta-data/", "http://2852039166/", "http://0xA9FEA9FE/",
    "http://0251.0376.0251.0376/", "http://[::ffff:169.254.169.254]/", "http://[::ffff:a9fe:a9fe]/",
    "http://169.254.169.254.nip.io.invalid/", "http://[fd00:ec2::254]/", "http://[2002:a9fe:a9fe::]/",
    "http://[64:ff9b::a9fe:a9fe]/",
]


def loopback_urls(port: int) -> list[str]:
    return [f"http://127.0.0.1:{port}/x", f"http://localhost:{port}/x", f"http://2130706433:{port}/x",
            f"http://0x7f000001:{port}/x", f"http://127.1:{port}/x", f"http://0.0.0.0:{port}/x",
            f"http://[::ffff:127.0.0.1]:{port}/x", f"http://[::1]:{port}/x", f"http://10.0.0.1:{port}/x",
            f"http://192.168.1.1:{port}/x", f"http://172.16.0.1:{port}/x", "file:///etc/passwd",
            f"gopher://127.0.0.1:{port}/x", f"http://[2002:7f00:1::]:{port}/x", f"http://[fec0::1]:{port}/x",
            f"http://a..b:{port}/x", f"http://{'a' * 64}.example:{port}/x", f"http://127.0.0.1:{port + 70000}/x"]


class Catcher:
    """A local server that counts every request (a request reaching it through the guard is an escape)."""

    def __init__(self) -> None:
        self.hits: list[dict[str, str]] = []

    def app(self) -> Starlette:
        async def any_(request: Request) -> Response:
            self.hits.append({"path": request.url.path, "query": request.url.query,
                              "auth": request.headers.get("authorization", "")})
            return Response("caught", media_type="text/plain")

        async def big(request: Request) -> Response:
            async def chunks() -> Any:
                for _ in range(64):
                    yield b"x" * 65536

            return StreamingResponse(chunks(), media_type="image/jpeg")  # no content-length: chunked

        async def trickle(request: Request) -> Response:
            async def bytes_slowly() -> Any:
                for _ in range(60):  # a byte a second: every single read is quick, the whole call is not
                    yield b"x"
                    await asyncio.sleep(1.0)

            return StreamingResponse(bytes_slowly(), media_type="text/plain")

        async def redirect(request: Request) -> Response:
            target = request.query_params["to"]
            return Response(status_code=302, headers={"location": target})

        return Starlette(routes=[Route("/big", big), Route("/trickle", trickle), Route("/redirect", redirect),
                                 Route("/{p:path}", any_,
                                                                                          methods=["GET", "POST"])])


# -- webhook signatures -------------------------------------------------------------------------------


def _msg_body(dep: Deployment, wamid: str) -> bytes:
    cfg = dep.emu.config
    doc = envelope(pnid=cfg.phone_number_id, waba=cfg.waba_id)
    doc["entry"][0]["changes"][0]["value"]["messages"][0]["id"] = wamid
    doc["entry"][0]["changes"][0]["value"]["messages"][0]["from"] = "34699000001"
    doc["entry"][0]["changes"][0]["value"]["contacts"][0]["wa_id"] = "34699000001"
    return json.dumps(doc, separators=(",", ":")).encode()


async def signatures(dep: Deployment) -> tuple[list[Check], list[str]]:
    secret = dep.emu.config.app_secret
    notes: list[str] = []
    url = f"{dep.serve.url}/webhook"

    def hexsig(body: bytes, key: str = secret, algo: str = "sha256") -> str:
        return hmac.new(key.encode(), body, algo).hexdigest()

    Make = Callable[[bytes], dict[str, str]]
    forms: list[tuple[str, Make]] = [
        ("no signature", lambda b: {}),
        ("empty header", lambda b: {"X-Hub-Signature-256": ""}),
        ("prefix only", lambda b: {"X-Hub-Signature-256": "sha256="}),
        ("hex without sha256= prefix", lambda b: {"X-Hub-Signature-256": hexsig(b)}),
        ("sha1= in the sha256 header", lambda b: {"X-Hub-Signature-256": "sha1=" + hexsig(b, algo="sha1")}),
        ("legacy X-Hub-Signature sha1 only", lambda b: {"X-Hub-Signature": "sha1=" + hexsig(b, algo="sha1")}),
        ("sha512= of the body", lambda b: {"X-Hub-Signature-256": "sha512=" + hexsig(b, algo="sha512")}),
        ("another app's secret", lambda b: {"X-Hub-Signature-256": sign("another-apps-secret", b)}),
        ("the verify token as secret", lambda b: {"X-Hub-Signature-256": sign(dep.emu.config.verify_token, b)}),
        ("signature + trailing bytes", lambda b: {"X-Hub-Signature-256": sign(secret, b) + "00"}),
        ("truncated signature", lambda b: {"X-Hub-Signature-256": sign(secret, b)[:40]}),
        ("signature of the empty body", lambda b: {"X-Hub-Signature-256": sign(secret, b"")}),
    ]
    attempts: list[tuple[str, bytes, dict[str, str]]] = []
    for i, (name, make) in enumerate(forms):
        body = _msg_body(dep, f"wamid.BYPASS{i:03d}")
        attempts.append((name, body, make(body)))
    # modified body: signed, then changed
    signed = _msg_body(dep, "wamid.BYPASSMOD")
    attempts.append(("modified body", signed.replace(b'"hi"', b'"HI"'), {"X-Hub-Signature-256": sign(secret, signed)}))

    valid_forms: list[tuple[str, bytes, dict[str, str]]] = []
    valid: list[tuple[str, Make]] = [
        ("header name upper case", lambda b: {"X-HUB-SIGNATURE-256": sign(secret, b)}),
        ("header name lower case", lambda b: {"x-hub-signature-256": sign(secret, b)}),
        ("upper-case hex digest", lambda b: {"X-Hub-Signature-256": "sha256=" + hexsig(b).upper()}),
    ]
    for i, (name, make) in enumerate(valid):
        body = _msg_body(dep, f"wamid.VALIDFORM{i:03d}")
        valid_forms.append((name, body, make(body)))

    let_through: list[str] = []
    refused_forms: list[str] = []
    async with httpx.AsyncClient(timeout=10) as client:
        metrics_before = (await client.get(f"{dep.serve.url}/metrics")).text
        for name, body, headers in attempts:
            r = await client.post(url, content=body, headers={"Content-Type": "application/json", **headers})
            if r.status_code == 200 or r.status_code not in (401, 403):
                let_through.append(f"{name} → {r.status_code}")
        for name, body, headers in valid_forms:
            r = await client.post(url, content=body, headers={"Content-Type": "application/json", **headers})
            if r.status_code != 200:
                refused_forms.append(f"{name} → {r.status_code}")
        metrics_after = (await client.get(f"{dep.serve.url}/metrics")).text
        # replay: a correctly signed old body (already stored and answered) must be a no-op
        replay_body = valid_forms[0][1]
        await asyncio.sleep(1.0)
        rows_before = await _counts(dep)
        replays = [await client.post(url, content=replay_body, headers={
            "Content-Type": "application/json", "X-Hub-Signature-256": sign(secret, replay_body)}) for _ in range(3)]
        await asyncio.sleep(1.5)
        rows_after = await _counts(dep)
    stored = await _stored_ids(dep)
    leaked = [n for (n, b, _h) in attempts if any(w in stored for w in _wamids(b))]
    refused_counted = _refusals(metrics_after) - _refusals(metrics_before)
    replay_ok = all(r.status_code == 200 for r in replays) and rows_before == rows_after
    if let_through:
        notes.append(f"signature bypass: {let_through}")
    if leaked:
        notes.append(f"bypass attempts stored: {leaked}")
    if refused_forms:
        notes.append(f"valid signatures refused: {refused_forms}")
    if not replay_ok:
        notes.append(f"replay changed something: {rows_before} → {rows_after}, {[r.status_code for r in replays]}")
    return [
        Check("signature bypasses refused", not let_through and not leaked,
              f"{len(attempts)} attempts, {len(let_through)} let through, {len(leaked)} stored, "
              f"{refused_counted:.0f} refusals counted in /metrics"),
        Check("valid signature spellings accepted", not refused_forms,
              f"{len(valid_forms) - len(refused_forms)}/{len(valid_forms)} (header case, upper-case hex)"),
        Check("replayed signed body is a no-op", replay_ok, f"3 replays → 200, rows {rows_before} = {rows_after}"),
    ], notes


def _wamids(body: bytes) -> list[str]:
    doc = json.loads(body)
    return [m["id"] for e in doc["entry"] for c in e["changes"] for m in c["value"].get("messages", [])]


def _refusals(metrics: str) -> float:
    total = 0.0
    for line in metrics.splitlines():
        if line.startswith("webhooks_received_total") and "result=" in line and any(
                k in line for k in ("missing_signature", "bad_signature", "malformed_signature", "wrong_app")):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def _stored_ids(dep: Deployment) -> set[str]:
    from sqlalchemy import select

    from waflow.store.tables import inbound_events

    store = await dep.open_store()
    try:
        async with store.read() as conn:
            return {r for r in (await conn.execute(select(inbound_events.c.provider_message_id))).scalars() if r}
    finally:
        await store.close()


async def _counts(dep: Deployment) -> tuple[int, int, int]:
    from sqlalchemy import func, select

    from waflow.store.tables import inbound_events, outbound_messages, sessions

    store = await dep.open_store()
    try:
        async with store.read() as conn:
            return tuple([(await conn.execute(select(func.count()).select_from(t))).scalar_one()  # type: ignore[return-value]
                          for t in (inbound_events, outbound_messages, sessions)])
    finally:
        await store.close()


async def _session_errors(dep: Deployment, flow_id: str) -> list[str]:
    from sqlalchemy import select

    from waflow.store.tables import sessions

    store = await dep.open_store()
    try:
        async with store.read() as conn:
            rows = await conn.execute(select(sessions.c.last_error).where(sessions.c.flow_id == flow_id))
            return [r or "" for r in rows.scalars()]
    finally:
        await store.close()


# -- admin API keys -----------------------------------------------------------------------------------


async def admin_keys(dep: Deployment) -> tuple[list[Check], list[str]]:
    other_key = "another-deployments-admin-key-42"
    stored_hash = hash_api_key(API_KEY)
    keys: dict[str, dict[str, str]] = {
        "no key": {}, "wrong key": {"Authorization": "Bearer wrong-key-wrong-key-wrong"},
        "another deployment's key": {"Authorization": f"Bearer {other_key}"},
        "the stored sha256 hash": {"Authorization": f"Bearer {stored_hash}"},
        "the hash's hex": {"Authorization": f"Bearer {stored_hash.removeprefix('sha256:')}"},
        "Basic auth with the key": {"Authorization": "Basic " + __import__("base64").b64encode(
            f"x:{API_KEY}".encode()).decode()},
        "key in the query string": {},
        "bearer without a key": {"Authorization": "Bearer"},
        "key with a prefix": {"Authorization": f"Bearer x{API_KEY}"},
        "key truncated": {"Authorization": f"Bearer {API_KEY[:-1]}"},
    }
    async with httpx.AsyncClient(base_url=dep.serve.url, timeout=10) as client:
        spec = (await client.get("/openapi.json")).json()
        routes = []
        for path, ops in spec["paths"].items():
            if not path.startswith("/api/"):
                continue
            concrete = path
            for name in ("message_id", "session_id", "campaign_id", "template_id"):
                concrete = concrete.replace("{" + name + "}", "1")
            concrete = concrete.replace("{flow_id}", "pizza").replace("{contact}", "34600111222").replace("{name}", "t")
            routes += [(m.upper(), concrete) for m in ops]
        let_in: list[str] = []
        for label, headers in keys.items():
            params = {"api_key": API_KEY, "key": API_KEY, "access_token": API_KEY} if "query" in label else None
            for method, path in routes:
                r = await client.request(method, path, headers=headers, params=params, json={})
                if r.status_code != 401:
                    let_in.append(f"{label}: {method} {path} → {r.status_code}")
        good = await client.get("/api/v1/flows", headers={"Authorization": f"Bearer {API_KEY}"})
    return [Check("admin API refuses every wrong key", not let_in and good.status_code == 200,
                  f"{len(keys)} kinds × {len(routes)} routes, {len(let_in)} let in; the right key → {good.status_code}")
            ], [f"admin API let in: {let_in[:5]}"] if let_in else []


# -- Jinja sandbox ------------------------------------------------------------------------------------


async def sandbox(dep: Deployment) -> tuple[list[Check], list[str]]:
    notes: list[str] = []
    accepted: list[str] = []
    unclear: list[str] = []
    async with dep.api() as api:
        for i, expr in enumerate(ESCAPES):
            flow = {"id": f"escape{i}", "triggers": [{"keyword": [f"escape{i}"]}], "start": "a",
                    "nodes": {"a": {"type": "message", "text": f"x {expr}", "next": "b"}, "b": {"type": "end"}}}
            r = await api.post("/api/v1/flows", content=json.dumps(flow), headers={"Content-Type": "application/json"})
            if r.status_code < 400:
                accepted.append(expr)
            elif r.status_code != 422 or not r.json().get("problems") or not any(
                    "nodes.a" in json.dumps(p) or p.get("node") == "a" for p in r.json()["problems"]):
                unclear.append(f"{expr} → {r.status_code} {r.text[:200]}")
        listed = (await api.get("/api/v1/flows")).text
        r = await api.post("/api/v1/flows", content=PROBE_FLOW, headers={"Content-Type": "application/yaml"})
        probe_ok = r.status_code < 300
        if not probe_ok:
            notes.append(f"probe flow not deployed: {r.status_code} {r.text[:300]}")
    deployed_escape = [f"escape{i}" for i in range(len(ESCAPES)) if f'"escape{i}"' in listed]
    for i, expr in enumerate(ESCAPES):  # deployed anyway: it must be inert when it runs
        if expr not in accepted:
            continue
        user = dep.emu.user(f"3469110{i:04d}")
        await user.send_text(f"escape{i}")
        with contextlib.suppress(TimeoutError):
            text = str(((await user.wait_for_received(1, timeout=8))[-1].content or {}).get("body", ""))
            notes.append(f"deployed escape {expr!r} rendered at runtime as {text[:80]!r}")
            if "<class" in text or "function" in text:
                notes.append(f"ESCAPE at runtime: {expr!r}")
    # runtime: what a user writes is data, never a template; a dynamic lookup cannot reach private attributes
    leaks: list[str] = []
    refused_at_runtime = 0
    if probe_ok:
        for i, said in enumerate(["__class__", "{{ ''.__class__.__mro__ }}", "__init__", "{% raw %}x"]):
            user = dep.emu.user(f"3469100{i:04d}")
            await user.send_text("probe")
            await user.wait_for_received(1, timeout=20)
            await user.send_text(said)
            try:
                reply = (await user.wait_for_received(2, timeout=8))[-1]
            except TimeoutError:  # the sandbox refused the lookup: the session ended with the reason
                refused_at_runtime += 1
                continue
            text = str((reply.content or {}).get("body", ""))
            if "<class" in text or "function" in text or "mro" in text.replace(said, ""):
                leaks.append(f"{said!r} → {text[:120]!r}")
        reasons = await _session_errors(dep, "probe")
        explained = [r for r in reasons if "not allowed" in r or "refused" in r]
        if refused_at_runtime and len(explained) < refused_at_runtime:
            leaks.append(f"a probe got no reply and no refusal reason: {reasons}")
    if accepted:
        notes.append(f"sandbox escapes deployed: {accepted}")
    if unclear:
        notes.append(f"refusals not naming the node: {unclear[:3]}")
    if leaks:
        notes.append(f"runtime leaks: {leaks}")
    return [
        Check("sandbox escapes refused at deploy", not accepted and not unclear and not deployed_escape,
              f"{len(ESCAPES)} flows, {len(accepted)} accepted, {len(unclear)} unclear refusals (422 names node a)"),
        Check("user text never evaluated", probe_ok and not leaks,
              f"4 probes, {len(leaks)} leaks, {refused_at_runtime} refused at runtime (session ended, reason kept)"),
    ], notes


# -- SSRF ---------------------------------------------------------------------------------------------


async def fetch_through_flow(dep: Deployment, urls: list[str], prefix: str) -> dict[str, str]:
    """A user asks the deployed `fetch` flow for each URL; the flow's reply says fetched / refused (why)."""
    out: dict[str, str] = {}

    async def one(i: int, url: str) -> None:
        user = dep.emu.user(f"{prefix}{i:05d}")
        await user.send_text("fetch")
        await user.wait_for_received(1, timeout=30)
        await user.send_text(url)
        reply = (await user.wait_for_received(2, timeout=30))[-1]
        out[url] = str((reply.content or {}).get("body", ""))

    await asyncio.gather(*(one(i, u) for i, u in enumerate(urls)))
    return out


async def ssrf(dep: Deployment, catcher: Catcher, port: int) -> tuple[list[Check], list[str]]:
    from waflow.engine.runtime.http_guard import Refused, check_url

    notes: list[str] = []
    async with dep.api() as api:
        r = await api.post("/api/v1/flows", content=FETCH_FLOW, headers={"Content-Type": "application/yaml"})
        if r.status_code >= 300:
            return [Check("http node SSRF guard", False, f"fetch flow not deployed: {r.status_code}")], [r.text[:500]]
    urls = loopback_urls(port) + METADATA_URLS
    before = len(catcher.hits)
    replies = await fetch_through_flow(dep, urls, "3469200")
    fetched = {u: t for u, t in replies.items() if not t.startswith("refused: refused")}
    hits = len(catcher.hits) - before
    # the guard itself, for every metadata spelling, with the metadata address allow-listed too
    guard_let: list[str] = []
    for url in METADATA_URLS:
        try:
            await check_url(url, frozenset({"169.254.169.254", "2852039166", "0xa9fea9fe", "[::ffff:169.254.169.254]"}))
            if ".invalid" not in url:
                guard_let.append(url)
        except Refused:
            pass
    if fetched:
        notes.append(f"not refused by the guard: {fetched}")
    if guard_let:
        notes.append(f"metadata allowed when allow-listed: {guard_let}")
    return [Check("http node refuses private/loopback/metadata", not fetched and hits == 0 and not guard_let,
                  f"{len(urls)} URLs via a deployed flow: {len(urls) - len(fetched)} refused with a reason, "
                  f"{hits} requests reached the local server; metadata refused even when allow-listed")], notes


async def ssrf_allow_listed(dep: Deployment, catcher: Catcher, port: int) -> Check:
    before = len(catcher.hits)
    replies = await fetch_through_flow(dep, [f"http://127.0.0.1:{port}/allowed?keep=1", "http://169.254.169.254/"],
                                       "3469300")
    allowed = replies[f"http://127.0.0.1:{port}/allowed?keep=1"]
    # the URL's own query string reaches the server (issue 16: it was dropped)
    ok = allowed.startswith("fetched 200") and len(catcher.hits) == before + 1 and catcher.hits[-1]["query"] == "keep=1"
    meta = replies["http://169.254.169.254/"].startswith("refused")
    return Check("allow-listed host reachable (its query kept), metadata still not", ok and meta,
                 f"127.0.0.1 → {allowed[:30]!r}, query {catcher.hits[-1]['query'] if catcher.hits else None!r}; "
                 f"169.254.169.254 → {replies['http://169.254.169.254/'][:60]!r}")


async def http_whole_call_timeout(dep: Deployment, port: int) -> Check:
    """A response trickling a byte a second ran 45 s past a node's `timeout` (it bounded each read only)."""
    t0 = time.monotonic()
    replies = await fetch_through_flow(dep, [f"http://127.0.0.1:{port}/trickle"], "3469400")
    took = time.monotonic() - t0
    reply = replies[f"http://127.0.0.1:{port}/trickle"]
    return Check("an http node's timeout covers the whole call", reply.startswith("refused") and took < 10,
                 f"a body at 1 byte/s, node timeout 3 s: {reply[:40]!r} after {took:.1f} s")


# -- media --------------------------------------------------------------------------------------------


async def media(dep: Deployment, catcher_url: str, other: Catcher, other_url: str) -> Check:
    """The client's `max_download_bytes`: a declared and a chunked oversize download are abandoned; a redirect
    to another origin does not carry the token; an upload of a type WhatsApp does not take is refused."""
    cfg = dep.emu.config
    limit = 256 * 1024
    results: dict[str, str] = {}
    async with CloudAPIClient(phone_number_id=cfg.phone_number_id, waba_id=cfg.waba_id, token=cfg.access_tokens[-1],
                              base_url=dep.emu.base_url, max_download_bytes=limit) as client:
        user = dep.emu.user("34694000001")
        await user.send_image(b"\xff\xd8\xff\xe0" + b"x" * (limit * 2), wait=False)
        media_id = user.sent()[-1]["image"]["id"]
        refused = 0
        for name, call in [("oversize (declared)", client.media.download(media_id)),
                           ("oversize (chunked)", client.media.download_url(f"{catcher_url}/big"))]:
            try:
                got = await call
                results[name] = f"downloaded {len(got.content)} B"
            except MediaTooLargeError:
                results[name] = "refused"
                refused += 1
        small = await client.media.download(media_id, max_bytes=limit * 4)
        results["within a larger bound"] = f"{len(small.content)} B {small.mime_type}"
        with contextlib.suppress(Exception):
            await client.media.download_url(f"{catcher_url}/redirect?to={other_url}/leak")
        leaked = any(cfg.access_tokens[-1] in h["auth"] for h in other.hits)
        results["cross-origin redirect"] = "token leaked" if leaked else "no token sent"
        try:
            await client.media.upload(b"MZ\x90\x00", "application/x-msdownload")
            results["upload .exe"] = "accepted"
        except Exception:
            results["upload .exe"] = "refused"
    ok = refused == 2 and not leaked and results["upload .exe"] == "refused"
    return Check("media downloads bounded", ok, "; ".join(f"{k}: {v}" for k, v in results.items()))


# -- logs ---------------------------------------------------------------------------------------------


def scan_logs(paths: list[Path], secrets: dict[str, str]) -> Check:
    found: list[str] = []
    lines = 0
    not_json = 0
    for path in paths:
        for line in path.read_text(errors="replace").splitlines():
            lines += 1
            if line.startswith("{"):
                try:
                    json.loads(line)
                except ValueError:
                    not_json += 1
            else:
                not_json += 1
            for name, value in secrets.items():
                if value and value in line:
                    found.append(f"{name} in {path.name}: {line[:160]}")
    return Check("no secret in any log", not found,
                 f"{len(paths)} files, {lines} lines ({not_json} not JSON), {len(secrets)} secrets, "
                 f"{len(found)} found" + (f": {found[0][:200]}" if found else ""))


async def security(work: Path) -> Result:
    tried = ("signature bypasses (no/empty/prefix-less/sha1/sha512/other secret/modified body/other number/...) and "
             "a replay; 10 kinds of wrong admin key on every route; 14 Jinja escapes deployed via the API + user "
             "text that looks like a template; http node to loopback/private/metadata (decimal, hex, octal, "
             "IPv6-mapped, localhost), with and without an allow-list; media download bounds; all logs scanned; "
             + findings.findings_tried())
    result = Result("security", tried)
    t0 = time.monotonic()
    catcher = Catcher()
    other = Catcher()
    async with serve_asgi(catcher.app()) as catcher_url, serve_asgi(other.app()) as other_url:
        port = int(catcher_url.rsplit(":", 1)[1])
        env = {"WAFLOW_HTTP__ALLOW_HOSTS": "[]"}
        async with deployment(work, env=env) as dep:
            for part in (signatures(dep), admin_keys(dep), sandbox(dep), ssrf(dep, catcher, port)):
                checks, notes = await part
                result.checks += checks
                result.notes += notes
            # the same deployment with 127.0.0.1 allow-listed
            serve = dep.serve
            await serve.stop()
            serve.env = {**serve.env, "WAFLOW_HTTP__ALLOW_HOSTS": '["127.0.0.1"]'}
            await serve.start()
            result.checks.append(await ssrf_allow_listed(dep, catcher, port))
            result.checks.append(await http_whole_call_timeout(dep, port))
            result.checks.append(await media(dep, catcher_url, other, other_url))
            # issue 16's findings, on the same deployment with a second app's number and debug logging
            await serve.stop()
            with dep.config.open("a", encoding="utf-8") as f:
                f.write(findings.other_number_toml(dep.token_file))
            serve.env = {**serve.env, "WAFLOW_LOG_LEVEL": "debug", "WAFLOW_SERVER__HEADER_TIMEOUT_S": "2"}
            await serve.start()
            result.checks += await findings.scoped_webhooks(dep)
            result.checks.append(await findings.credentials_before_bodies(dep))
            result.checks.append(await findings.slow_headers(dep, 2.0))
            result.checks.append(await findings.emulator_control_csrf(dep))
            result.checks += await findings.bounded_work(dep)
            result.checks.append(await findings.backlog_cap(dep))
            result.checks.append(await findings.deep_json(dep))
            result.checks.append(findings.database_file(dep))
            result.checks.append(findings.config_check_passwords(dep))
            secrets = dep.secrets()
            logs = dep.logs()
        result.checks.append(scan_logs(logs, secrets))
        result.checks.append(findings.debug_values(logs, [findings.SECRET_TEXT, findings.SECRET_NAME]))
    result.seconds = time.monotonic() - t0
    return result
