"""Webhook storm: every webhook arrives three times, out of order and batched, at thousands of events per
second, while the flow's replies leave at the number's limit.

Two sources feed `waflow serve`'s webhook endpoint through a relay in this process:
- the emulator's own webhooks (user messages of pizza orders and the statuses of the replies, batched and
  shuffled by the emulator), each POST relayed three times at random moments (so copies overtake each other);
- a generator of signed status batches for messages another sender sent from the same number (waflow keeps
  them although it does not know the ids), each batch posted three times, shuffled.
Nothing may be lost (every event stored once, every conversation ended, every reply sent once, in order,
statuses final) and the sends must stay within the number's limit. The webhook answers must stay fast (p99 under
`WEBHOOK_P99_MS`), the replies timely (p99 under `REPLY_P99_MS`), and the endpoint must either take the offered
rate (`RATE_FRACTION`) or shed the excess with 503 + Retry-After while its answers stay fast.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections import Counter
from pathlib import Path

import httpx
from sqlalchemy import func, select
from starlette.types import Receive, Scope, Send

from waflow.emulator import serve_asgi, sign
from waflow.store.tables import inbound_events, send_attempts

from .harness import Deployment, deployment, judge, run_conversations, wait_settled
from .report import Check, Result

COPIES = 3
LIMIT = 80.0  # the number's messages/s (the default)
STORM_PREFIX = "wamid.STORM"

# The bounds the storm must stay within (the quick size runs in `make test` on a 2-core machine others may be using).
# Webhook answer p99 (every POST, 200 or 503, from the poster's request to its answer): Meta counts a slow answer
# (seconds) as failed and redelivers, so under a storm the endpoint must answer well inside that. Measured with the
# quick size (1,000 events/s + 60 conversations for 5 s): p99 124-635 ms over ten runs while other test suites shared
# the machine (p50 27-114 ms), and once 1,362 ms while two other benchmarks ran beside it; 1,500 ms leaves that
# margin and is still half of "a few seconds" — a writer that lets answers wait behind an unbounded queue, or an
# endpoint starved by its own background work, fails it. This process's own loop lag (`LagProbe`, p99 9-48 ms) is
# added: it is in every measured answer but is not the endpoint's.
WEBHOOK_P99_MS = 1_500.0
# User message → reply on the phone, p99: the emulator's webhook to waflow, the inbox, the engine, the outbox and the
# send through the number's limiter, while the storm shares the machine. Measured with the quick size: p99 560-1,199 ms
# (2,998 ms in the run beside two benchmarks); 5,000 ms is still a prompt answer to a person, and fails when replies
# queue behind the storm's statuses.
REPLY_P99_MS = 5_000.0
REPLY_HOPS = 3  # times a reply's path wakes in this process: the user's send, its relayed webhook, the reply's receipt
# The storm's copies answered 200 per second (over the span from the first copy's scheduled moment to the last one's
# 200) at least this fraction of the rate they were offered at (over the span they were scheduled in) — unless the
# endpoint shed the excess with 503 + Retry-After (Meta retries later) and its answers stayed within the p99 bound.
# An endpoint that keeps up ends one answer time after the schedule (5.5 s: 1 s late is still 85%). Measured with
# the quick size: 92-99% (873-961 events/s answered for 938-979/s offered).
RATE_FRACTION = 0.8
# The poster honours a Retry-After up to this long (Meta's own schedule is its business; the bench stays short).
RETRY_AFTER_CAP_S = 1.0
RETRY_DEFAULT_S = 0.2


def percentile(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[int(q * (len(s) - 1))] if s else 0.0


def max_per_second(times: list[float]) -> int:
    """The most sends in any 1-second window."""
    times = sorted(times)
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while t - times[lo] >= 1.0:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def retry_after_s(value: str | None) -> float | None:
    """A `Retry-After` in seconds (the delta-seconds form; an HTTP date or garbage: None)."""
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


class Poster:
    """Posts bodies to waflow's webhook endpoint `COPIES` times each, at random moments within `spread_s`,
    retrying a copy until it is answered 200 (as Meta would; after its Retry-After, at most `RETRY_AFTER_CAP_S`);
    records every answer time."""

    def __init__(self, url: str, spread_s: float) -> None:
        self.url = url
        self.spread_s = spread_s
        self.client = httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=64))
        self.answer_ms: list[float] = []
        self.codes: Counter[int] = Counter()
        self.retry_after = 0  # 503 answers that said when to come back
        self.events_ok = 0
        # the generator's copies: (scheduled moment, moment answered 200, events), monotonic clock
        self.storm_copies: list[tuple[float, float, int]] = []
        self.tasks: set[asyncio.Task[None]] = set()
        self.rng = random.Random(3)

    def submit(self, body: bytes, signature: str, events: int, *, storm: bool = False) -> None:
        for _ in range(COPIES):
            task = asyncio.create_task(self._copy(body, signature, events, self.rng.uniform(0, self.spread_s), storm))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _copy(self, body: bytes, signature: str, events: int, delay: float, storm: bool) -> None:
        scheduled = time.monotonic() + delay
        await asyncio.sleep(delay)
        headers = {"Content-Type": "application/json", "X-Hub-Signature-256": signature}
        for _ in range(100):
            t0 = time.perf_counter()
            try:
                resp = await self.client.post(self.url, content=body, headers=headers)
            except httpx.HTTPError:
                self.codes[0] += 1
                await asyncio.sleep(0.2)
                continue
            self.answer_ms.append((time.perf_counter() - t0) * 1000)
            self.codes[resp.status_code] += 1
            if resp.status_code == 200:
                self.events_ok += events
                if storm:
                    self.storm_copies.append((scheduled, time.monotonic(), events))
                return
            wait = retry_after_s(resp.headers.get("retry-after"))
            if resp.status_code == 503 and wait is not None:
                self.retry_after += 1
            await asyncio.sleep(RETRY_DEFAULT_S if wait is None else min(wait, RETRY_AFTER_CAP_S))

    async def drain(self) -> None:
        while self.tasks:
            await asyncio.gather(*list(self.tasks))

    async def aclose(self) -> None:
        await self.drain()
        await self.client.aclose()


def reached_rate(copies: list[tuple[float, float, int]]) -> tuple[float, float]:
    """(offered, reached) events/s of the storm's copies: their events over the span they were scheduled in, and
    over the span from the first scheduled to the last answered 200 (an endpoint that keeps up finishes one answer
    time after the schedule; one that falls behind stretches the span)."""
    if not copies:
        return 0.0, 0.0
    events = sum(n for _, _, n in copies)
    first = min(s for s, _, _ in copies)
    offered_span = max(s for s, _, _ in copies) - first
    answered_span = max(a for _, a, _ in copies) - first
    return events / max(offered_span, 1e-3), events / max(answered_span, 1e-3)


class LagProbe:
    """How late this process's event loop wakes (it hosts the emulator, the relay, the poster and the users):
    that lateness is in every answer time the poster measures, though it is not the endpoint's."""

    def __init__(self, tick_s: float = 0.01) -> None:
        self.tick_s = tick_s
        self.lag_ms: list[float] = []
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            t0 = time.perf_counter()
            await asyncio.sleep(self.tick_s)
            self.lag_ms.append(max(0.0, (time.perf_counter() - t0 - self.tick_s) * 1000))

    async def stop(self) -> float:
        """Stop; the p99 lag in ms."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        return percentile(self.lag_ms, 0.99)


class Relay:
    """The emulator's callback: answers 200 at once and hands each body to the `Poster` (three copies)."""

    def __init__(self, poster: Poster) -> None:
        self.poster = poster

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        headers = dict(scope["headers"])
        if scope["method"] == "POST":
            doc = json.loads(body)
            events = sum(len(ch["value"].get("messages", [])) + len(ch["value"].get("statuses", []))
                         for e in doc["entry"] for ch in e["changes"])
            self.poster.submit(body, headers[b"x-hub-signature-256"].decode(), events)
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"ok"})


def status_batch(dep: Deployment, start: int, size: int) -> tuple[bytes, list[str]]:
    """A signed-ready body of `size` statuses of messages another sender sent (shuffled: read before sent...)."""
    cfg = dep.emu.config
    items, keys = [], []
    now = str(int(time.time()))
    for n in range(start, start + size):
        wamid = f"{STORM_PREFIX}{n // 3:09d}"
        status = ("sent", "delivered", "read")[n % 3]
        items.append({"id": wamid, "status": status, "timestamp": now, "recipient_id": f"3490{n // 3 % 10**7:07d}"})
        keys.append(f"st:{wamid}:{status}")
    random.Random(start).shuffle(items)
    value = {"messaging_product": "whatsapp",
             "metadata": {"display_phone_number": cfg.display_phone_number, "phone_number_id": cfg.phone_number_id},
             "statuses": items}
    doc = {"object": "whatsapp_business_account",
           "entry": [{"id": cfg.waba_id, "changes": [{"field": "messages", "value": value}]}]}
    return json.dumps(doc, separators=(",", ":")).encode(), keys


async def generate(dep: Deployment, poster: Poster, rate: float, seconds: float, batch: int) -> list[str]:
    """Unique status events at `rate / COPIES` per second (so `rate` counting the copies) for `seconds`."""
    keys: list[str] = []
    unique_rate = rate / COPIES
    t0 = time.monotonic()
    made = 0
    while (elapsed := time.monotonic() - t0) < seconds:
        due = int(elapsed * unique_rate)
        while made + batch <= due:
            body, k = status_batch(dep, made, batch)
            keys += k
            poster.submit(body, sign(dep.emu.config.app_secret, body), batch, storm=True)
            made += batch
        await asyncio.sleep(0.01)
    return keys


async def storm(work: Path, *, seconds: float, rate: float, conversations: int) -> Result:
    tried = (f"{seconds:.0f} s: signed status batches at {rate:.0f} events/s (each batch posted {COPIES}×, shuffled) "
             f"+ {conversations} pizza orders whose webhooks are batched, shuffled and relayed {COPIES}×; "
             f"replies at the number's limit ({LIMIT:.0f}/s)")
    result = Result("webhook storm", tried)
    t0 = time.monotonic()
    emulator = {"throughput_mps": LIMIT}
    async with deployment(work, emulator=emulator) as dep:
        poster = Poster(f"{dep.serve.url}/webhook", spread_s=0.5)
        async with serve_asgi(Relay(poster)) as relay_url:
            dep.emu.set_callback(relay_url)
            dep.emu.webhook_modes(reorder=True, batch_size=20, window_s=0.05)
            probe = LagProbe()
            probe.start()
            gen = asyncio.create_task(generate(dep, poster, rate, seconds, batch=50))
            convs = await run_conversations(dep.emu, conversations, over_s=seconds * 0.9, prefix="3463",
                                            think=0.1, timeout=600)
            keys = await gen
            lag_p99 = await probe.stop()
            snap = await wait_settled(dep, [c.user.wa_id for c in convs], timeout=180)
            await dep.emu.webhooks_idle(30)
            await poster.drain()
            verdict = judge(dep.emu, convs, snap)
            store = await dep.open_store()
            try:
                async with store.read() as conn:
                    stored = Counter((await conn.execute(select(inbound_events.c.dedup_key).where(
                        inbound_events.c.dedup_key.like(f"st:{STORM_PREFIX}%")))).scalars())
                    throttled = (await conn.execute(select(func.count()).select_from(send_attempts).where(
                        send_attempts.c.error_code == 130429))).scalar_one()
                    send_starts = [t.timestamp() for t in (await conn.execute(select(send_attempts.c.started_at)
                                                           .where(send_attempts.c.outcome == "accepted"))).scalars()]
            finally:
                await store.close()
            await poster.aclose()
        lost = [k for k in keys if k not in stored]
        twice = [k for k, n in stored.items() if n > 1]
        sends = [m.accepted_at for m in dep.emu.sent()]
        # The judge of the rate is waflow's own clock (when each send started): the emulator shares this process
        # with the storm's generator and relay, and its receive clock adds its own event-loop lag, which bunched
        # punctual sends into 91-92 "per second" while waflow's starts never put more than 81 into one.
        peak = max_per_second(send_starts)
        peak_seen = max_per_second(sends)
        span = (max(sends) - min(sends)) if len(sends) > 1 else 1.0
        offered, reached_rate_ = reached_rate(poster.storm_copies)
        p99 = percentile(poster.answer_ms, 0.99)
        # what this process's own loop lateness adds to each measured answer is not the endpoint's
        answer_bound = WEBHOOK_P99_MS + lag_p99
        answers_fast = bool(poster.answer_ms) and p99 <= answer_bound
        non200 = {k: v for k, v in poster.codes.items() if k != 200}
        reached = offered > 0 and reached_rate_ >= offered * RATE_FRACTION
        shed = poster.codes[503] > 0 and poster.retry_after == poster.codes[503] and answers_fast
        reply_p99 = verdict.figures["p99_ms"]
        reply_bound = REPLY_P99_MS + REPLY_HOPS * lag_p99
        result.checks = [
            Check("storm rate", reached or shed,
                  f"storm copies answered 200 at {reached_rate_:.0f} events/s for {offered:.0f}/s offered "
                  f"(nominal {rate:.0f}/s; ≥ {RATE_FRACTION:.0%}: {'yes' if reached else 'no'}); "
                  f"{poster.events_ok} events answered 200 in all; non-200 answers {non200 or 0}, "
                  f"{poster.retry_after} 503s with Retry-After"
                  + ("; shed with 503 + Retry-After, answers fast" if shed else "")),
            Check("storm events stored once", not lost and not twice,
                  f"{len(keys)} unique, {len(lost)} lost, {len(twice)} twice"),
            Check("webhook answer p99", answers_fast,
                  f"p99 {p99:.0f} ms (≤ {WEBHOOK_P99_MS:.0f} + {lag_p99:.0f} ms this process's loop lag p99), "
                  f"p50 {percentile(poster.answer_ms, 0.5):.0f} ms over {len(poster.answer_ms)} POSTs"),
            Check("sends within the number's limit", throttled == 0 and peak <= LIMIT,
                  f"{throttled}× 130429; busiest sliding second {peak} sends by waflow's clock (≤ {LIMIT:.0f}), "
                  f"{peak_seen} by the emulator's receive clock (lags with this busy process); "
                  f"mean {len(sends) / span:.0f}/s"),
            *verdict.checks,
            Check("reply time", 0 < reply_p99 <= reply_bound,
                  f"p99 {reply_p99:.0f} ms (≤ {REPLY_P99_MS:.0f} + {REPLY_HOPS} × {lag_p99:.0f} ms loop lag; "
                  f"user message → reply on the phone)"),
        ]
        result.notes += verdict.notes
        if lost or twice:
            result.notes.append(f"storm events lost {lost[:3]}, stored twice {twice[:3]}")
    result.seconds = time.monotonic() - t0
    return result
