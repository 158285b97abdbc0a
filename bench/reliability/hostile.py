"""Bad input: property-based fuzzing of the webhook parser and the flow loader (Hypothesis), schemathesis
against the admin API's OpenAPI, and a corpus of hostile bodies sent to the webhook endpoint and the admin
API of a running `waflow serve`. Never a 500, never a crash, never a stored row lost or changed; every
refusal names its reason (in the answer, or in the dead letter)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import hypothesis
import hypothesis.errors
from hypothesis import strategies as st
from sqlalchemy import func, select

from waflow.emulator import sign
from waflow.engine.flows.loader import load_flow_data, load_flow_text
from waflow.engine.flows.problems import FlowLoadError
from waflow.engine.flows.validate import validate_flow
from waflow.providers.cloud import WebhookParseError, parse_webhook
from waflow.server.testing import API_KEY
from waflow.store import Store
from waflow.store.tables import contacts, dead_letters, inbound_events, outbound_messages, sessions

from .harness import Deployment, deployment, run_conversations, wait_settled
from .report import Check, Result

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=30,
)


def envelope(value: Any = None, *, pnid: str = "106540352242922", waba: str = "102290129340398") -> dict[str, Any]:
    msg = {"from": "34600111222", "id": "wamid.HOSTILE1", "timestamp": "1760000000", "type": "text",
           "text": {"body": "hi"}}
    val = value if value is not None else {
        "messaging_product": "whatsapp", "metadata": {"display_phone_number": "15550783881", "phone_number_id": pnid},
        "contacts": [{"profile": {"name": "Ana"}, "wa_id": "34600111222"}], "messages": [msg]}
    return {"object": "whatsapp_business_account", "entry": [{"id": waba, "changes": [{"field": "messages",
                                                                                    "value": val}]}]}


def _mutate(doc: Any, path: list[int], leaf: Any) -> Any:
    """Replace the node reached by walking `path` (indices into dict values / list items) with `leaf`."""
    if not path or not isinstance(doc, dict | list) or not doc:
        return leaf
    items = list(doc.items()) if isinstance(doc, dict) else list(enumerate(doc))
    key, child = items[path[0] % len(items)]
    copy: Any = dict(doc) if isinstance(doc, dict) else list(doc)
    copy[key] = _mutate(child, path[1:], leaf)
    return copy


def _fuzz(name: str, strategy: Any, body: Callable[..., None], examples: int) -> tuple[int, list[str]]:
    """Run `body` over `examples` examples; (examples run, failures as text)."""
    ran = 0
    failures: list[str] = []

    @hypothesis.given(strategy)
    @hypothesis.settings(max_examples=examples, deadline=None, database=None, derandomize=True,
                         suppress_health_check=list(hypothesis.HealthCheck))
    def run(value: Any) -> None:
        nonlocal ran
        ran += 1
        body(value)

    try:
        run()
    except Exception as exc:  # the shrunk counterexample
        failures.append(f"{name}: {type(exc).__name__}: {str(exc)[:400]}")
    return ran, failures


def fuzz_parsers(examples: int) -> tuple[list[Check], list[str]]:
    def parse(raw: bytes) -> None:
        try:
            parse_webhook(raw)
        except WebhookParseError as exc:
            assert str(exc), "a refusal without a reason"

    def parse_doc(doc: Any) -> None:
        parse(json.dumps(doc).encode())

    base = envelope()
    mutated = st.builds(lambda p, leaf: _mutate(base, p, leaf), st.lists(st.integers(0, 9), max_size=8), JSON)

    def flow_text(text: str) -> None:
        try:
            flow = load_flow_text(text)
        except FlowLoadError as exc:
            assert exc.problems and all(p.message for p in exc.problems)
            return
        validate_flow(flow)

    good = {"id": "f", "start": "a", "nodes": {"a": {"type": "message", "text": "hi {{ contact.name }}", "next": "b"},
                                                "b": {"type": "end"}}}

    def flow_data(doc: Any) -> None:
        try:
            flow = load_flow_data(doc)
        except FlowLoadError as exc:
            assert exc.problems and all(p.message for p in exc.problems)
            return
        validate_flow(flow)

    flow_mutated = st.builds(lambda p, leaf: _mutate(good, p, leaf), st.lists(st.integers(0, 9), max_size=6), JSON)
    yamlish = st.text(alphabet=st.sampled_from(list("{}[]:-&*!|>'\"#% \n\tabc01.")), max_size=200)
    runs: list[tuple[str, Any, Callable[..., None]]] = [
        ("parse_webhook(bytes)", st.binary(max_size=300), parse),
        ("parse_webhook(json)", JSON, parse_doc),
        ("parse_webhook(mutated envelope)", mutated, parse_doc),
        ("flow loader (text)", st.text(max_size=300) | yamlish, flow_text),
        ("flow loader (mutated flow)", flow_mutated, flow_data),
    ]
    total, failures = 0, []
    # explicit hostile documents (examples a random search rarely builds)
    for name, text, fmt in [("YAML 5000-digit int", "id: " + "1" * 5000 + "\n", "yaml"),
                            ("JSON 5000-digit int", '{"id": ' + "1" * 5000 + "}", "json"),
                            ("YAML 100k nesting", "a: " + "[" * 100_000, "yaml"),
                            ("JSON 100k nesting", "[" * 100_000, "json")]:
        total += 1
        try:
            load_flow_text(text, fmt=fmt)  # type: ignore[arg-type]
        except FlowLoadError:
            pass
        except Exception as exc:
            failures.append(f"flow loader ({name}): {type(exc).__name__}: {str(exc)[:200]}")
    for name, strategy, body in runs:
        n, f = _fuzz(name, strategy, body, examples)
        total += n
        failures += f
    check = Check("fuzzed parsers refuse with a reason", not failures,
                  f"{total} examples (webhook parser, flow loader), {len(failures)} failures")
    return [check], failures


def run_schemathesis(url: str, examples: int) -> tuple[Check, list[str]]:
    """The tests/api approach (each operation's Hypothesis strategy, positive and negative) against the process."""
    import schemathesis
    from schemathesis.generation import GenerationMode

    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    headers = {"Authorization": f"Bearer {API_KEY}"}
    operations = [r.ok() for r in schema.get_all_operations()]  # type: ignore[union-attr]
    failures: list[str] = []
    calls = 0
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
            @hypothesis.settings(max_examples=examples, deadline=None, derandomize=True, database=None,
                                 suppress_health_check=list(hypothesis.HealthCheck))
            def run(case: Any) -> None:
                nonlocal calls
                calls += 1
                response = case.call(base_url=url, headers=headers, timeout=30)
                upstream = response.status_code == 502 and "cloud_api" in response.text
                assert response.status_code < 500 or upstream, f"{response.status_code} {response.text[:300]}"

            try:
                run()
            except hypothesis.errors.Unsatisfiable:
                continue
            except Exception as exc:
                failures.append(f"{operation.method.upper()} {operation.path} ({mode.value}): {str(exc)[:600]}")
    return Check("schemathesis: no 5xx", not failures,
                 f"{len(operations)} operations, {calls} calls, {len(failures)} failing"), failures


def corpus() -> list[tuple[str, bytes, str]]:
    """(name, body, content type) — hostile bodies."""
    valid = json.dumps(envelope(), separators=(",", ":")).encode()
    text = json.dumps(envelope()).replace('"hi"', '"café ☕ ñ"')
    head = b'{"object":"whatsapp_business_account"'
    dup = valid.replace(head, head + b',"object":1', 1)
    return [
        ("truncated", valid[: len(valid) // 2], "application/json"),
        ("empty", b"", "application/json"),
        ("nested 100k [", b"[" * 100_000 + b"]" * 100_000, "application/json"),
        ("nested 100k {", b'{"a":' * 100_000 + b"1" + b"}" * 100_000, "application/json"),
        ("10 MB", b'{"object":"' + b"x" * (10 * 1024 * 1024) + b'"}', "application/json"),
        ("latin-1", text.encode("latin-1", errors="replace"), "application/json; charset=latin-1"),
        ("UTF-16", text.encode("utf-16"), "application/json; charset=utf-16"),
        ("invalid UTF-8", valid.replace(b'"hi"', b'"\xff\xfe\xc3("'), "application/json"),
        ("NaN/Infinity", valid.replace(b'"1760000000"', b"NaN").replace(b'"messages"', b'"x":Infinity,"messages"'),
         "application/json"),
        ("duplicate keys", dup, "application/json"),
        ("huge number", valid.replace(b'"1760000000"', b"1" + b"0" * 5000), "application/json"),
        ("1e999", valid.replace(b'"1760000000"', b"1e999"), "application/json"),
        ("null bytes", valid.replace(b'"hi"', b'"h\\u0000i\x00"'), "application/json"),
        ("NUL everywhere", b"\x00" * 4096, "application/json"),
        ("YAML bomb", b"a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
         b"c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
         b"d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n", "application/yaml"),
        ("YAML python tag", b"!!python/object/apply:os.system ['echo owned']\n", "application/yaml"),
        ("not an object", b"[1,2,3]", "application/json"),
    ]


def _names_reason(resp: httpx.Response) -> bool:
    if resp.status_code < 400:
        return True
    try:
        body = resp.json()
    except ValueError:
        return bool(resp.text.strip())
    return isinstance(body, dict) and any(body.get(k) for k in ("error", "message", "problems", "detail"))


async def _table_state(store: Store) -> dict[str, str]:
    """Per table: row count and a digest of the rows (what must not be lost or changed)."""
    out = {}
    async with store.read() as conn:
        for t in (contacts, inbound_events, outbound_messages, sessions, dead_letters):
            rows = (await conn.execute(select(t).order_by(t.c.id))).all()
            out[t.name] = f"{len(rows)}:{hashlib.sha256(repr(rows).encode()).hexdigest()[:12]}"
    return out


async def send_corpus(dep: Deployment) -> tuple[list[Check], list[str]]:
    notes: list[str] = []
    bodies = corpus()
    secret = dep.emu.config.app_secret
    results: list[tuple[str, str, int, bool]] = []  # (target, name, status, names its reason)
    store = await dep.open_store()
    try:
        async with store.read() as conn:
            letters_before = (await conn.execute(select(func.count()).select_from(dead_letters))).scalar_one()
        before = await _table_state(store)
        async with httpx.AsyncClient(base_url=dep.serve.url, timeout=60) as client:
            signed_bad = 0
            for name, body, ctype in bodies:
                for signed in (True, False):
                    headers = {"Content-Type": ctype}
                    if signed:
                        headers["X-Hub-Signature-256"] = sign(secret, body)
                    try:
                        r = await client.post("/webhook", content=body, headers=headers)
                    except httpx.HTTPError as exc:
                        results.append(("webhook", f"{name} signed={signed}", 0, False))
                        notes.append(f"webhook {name}: {type(exc).__name__}")
                        continue
                    results.append(("webhook", f"{name} signed={signed}", r.status_code, _names_reason(r)))
                    if signed and r.status_code == 200 and name not in ("duplicate keys",):
                        signed_bad += 1
                auth = {"Authorization": f"Bearer {API_KEY}", "Content-Type": ctype}
                for path in ("/api/v1/messages", "/api/v1/flows", "/api/v1/sessions/1/reply", "/api/v1/campaigns"):
                    try:
                        r = await client.post(path, content=body, headers=auth)
                    except httpx.HTTPError as exc:
                        results.append(("api", f"{path} {name}", 0, False))
                        notes.append(f"api {path} {name}: {type(exc).__name__}")
                        continue
                    results.append(("api", f"{path} {name}", r.status_code, _names_reason(r)))
            alive = dep.serve.alive() and (await client.get("/readyz")).status_code == 200
        async with store.read() as conn:
            letters = (await conn.execute(select(dead_letters.c.reason, dead_letters.c.body).where(
                dead_letters.c.id > 0).order_by(dead_letters.c.id))).all()[letters_before:]
        after = await _table_state(store)
    finally:
        await store.close()
    five = [(t, n, s) for t, n, s, _ in results if s >= 500 or s == 0]
    unnamed = [(t, n, s) for t, n, s, ok in results if not ok]
    no_reason_letters = [r for r in letters if not (r.reason or "").strip()]
    changed = [k for k in before if k != "dead_letters" and before[k] != after[k]]
    if five:
        notes.append(f"5xx / no answer: {five[:6]}")
    if unnamed:
        notes.append(f"refusals without a reason: {unnamed[:6]}")
    if changed:
        notes.append(f"stored rows changed: {changed} ({before} → {after})")
    checks = [
        Check("hostile bodies: never a 5xx", not five,
              f"{len(bodies)} bodies × (webhook signed/unsigned + 4 API routes) = {len(results)} requests, "
              f"{len(five)} 5xx"),
        Check("server still answers", alive, "readyz 200 after the corpus" if alive else "dead or not ready"),
        Check("no stored row lost or changed", not changed, ", ".join(f"{k} {v.split(':')[0]}" for k, v in
                                                                       after.items() if k != "dead_letters")),
        Check("every refusal names its reason", not unnamed and not no_reason_letters and len(letters) >= signed_bad,
              f"{sum(1 for _, _, s, _ in results if s >= 400)} refusals, {len(letters)} dead letters with a reason "
              f"(≥ {signed_bad} signed bad bodies)"),
    ]
    return checks, notes


async def hostile(work: Path, *, examples: int, schema_examples: int) -> Result:
    tried = (f"Hypothesis: parse_webhook and the flow loader ({examples} examples × 5 strategies); schemathesis "
             f"on the admin API ({schema_examples}/operation, valid + invalid); {len(corpus())} hostile bodies "
             "(truncated, 100k-deep, 10 MB, latin-1, UTF-16, bad UTF-8, NaN, duplicate keys, huge numbers, NUL, "
             "YAML bombs) to the webhook and the admin API")
    result = Result("bad input", tried)
    t0 = time.monotonic()
    checks, notes = await asyncio.to_thread(fuzz_parsers, examples)
    result.checks += checks
    result.notes += notes
    async with deployment(work) as dep:
        convs = await run_conversations(dep.emu, 5, over_s=0.5, prefix="3464")
        await wait_settled(dep, [c.user.wa_id for c in convs], timeout=30)
        checks, notes = await send_corpus(dep)
        result.checks += checks
        result.notes += notes
        check, failures = await asyncio.to_thread(run_schemathesis, dep.serve.url, schema_examples)
        alive = dep.serve.alive()
        result.checks += [check, Check("server alive after schemathesis", alive, "")]
        result.notes += failures
    result.seconds = time.monotonic() - t0
    return result
