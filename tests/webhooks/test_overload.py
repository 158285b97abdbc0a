"""Overload: when more events wait for their inbox commit than `max_uncommitted_events`, or the writer predicts
a POST would wait longer than `max_commit_wait_s` for its commit, a signed POST is answered 503 + Retry-After at
once, nothing of it stored, and counted; below the bounds it is taken and answered 200 once durable.

The writer is held inside its commit by an event the test controls (`GatedReceiver`), and each admitted
POST is known to be queued by an event set when the writer takes it (`queued`); the time bound reads a `Clock`
the test moves: nothing here sleeps."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY
from starlette.applications import Starlette

from waflow.providers.cloud import ParsedWebhook, parse_webhook
from waflow.store import Store
from waflow.store.types import utcnow
from waflow.webhooks import InboxRequest, InboxWriter, WebhookReceiver, WriteOutcome, WriterOverloadedError
from waflow.webhooks.app import RETRY_AFTER_S, WebhookApp
from waflow.webhooks.persist import WriteRequest
from waflow.webhooks.writer import WriterTooSlowError

from .helpers import PNID, WABA, config, contact_rows, dead_letter_rows, inbox_rows, post, wire

PATH = "/webhook"


def doc(prefix: str, n: int, wa_id: str) -> dict[str, Any]:
    """A signed-ready body of `n` text messages from `wa_id` (ids `{prefix}1..n`)."""
    messages = [{"from": wa_id, "id": f"{prefix}{i}", "timestamp": "1760000000", "type": "text",
                 "text": {"body": f"hola {i}"}} for i in range(1, n + 1)]
    value = {"messaging_product": "whatsapp", "metadata": {"display_phone_number": "1", "phone_number_id": PNID},
             "contacts": [{"profile": {"name": "Ana"}, "wa_id": wa_id}], "messages": messages}
    return {"object": "whatsapp_business_account",
            "entry": [{"id": WABA, "changes": [{"field": "messages", "value": value}]}]}


def overloaded() -> float:
    return REGISTRY.get_sample_value("webhooks_received_total", {"result": "overloaded"}) or 0.0


class Clock:
    """The writer's clock, moved by the test: commit durations and waiting ages without sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class GatedReceiver(WebhookReceiver):
    """A receiver whose inbox commits wait for `gate`; `entered` is set when a commit is waiting. With `clock`,
    its writer reads that clock (the time bound's commit durations and waiting ages)."""

    def __init__(self, *args: Any, clock: Clock | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if clock is not None:
            cfg = self.config
            self.writer = InboxWriter(self._commit, max_events=cfg.batch_max_events, linger_s=cfg.batch_linger_s,
                                      max_uncommitted_events=cfg.max_uncommitted_events,
                                      max_commit_wait_s=cfg.max_commit_wait_s, clock=clock)
        self.gate = asyncio.Event()
        self.entered = asyncio.Event()
        self.queued = asyncio.Event()  # set each time the writer takes a request into its queue
        submit = self.writer.submit

        def observed(request: WriteRequest) -> asyncio.Future[WriteOutcome]:
            future = submit(request)  # raises (nothing queued) when over the bound
            self.queued.set()
            return future

        self.writer.submit = observed  # type: ignore[method-assign]

    async def _commit(self, requests: Sequence[WriteRequest]) -> list[WriteOutcome]:
        self.entered.set()
        await self.gate.wait()
        return await super()._commit(requests)


@pytest.fixture
async def gated(store: Store) -> AsyncIterator[tuple[GatedReceiver, httpx.AsyncClient, httpx.AsyncClient]]:
    """A receiver bounded at 3 uncommitted events (no time bound), its raw-ASGI app (what `waflow serve` mounts) and its
    Starlette routes, each behind an in-process client."""
    # no time bound here: a slow machine must not turn the held commit's age into a refusal
    receiver = GatedReceiver(config(max_uncommitted_events=3, max_commit_wait_s=None), store, path=PATH)
    asgi = httpx.AsyncClient(transport=httpx.ASGITransport(app=WebhookApp(receiver)), base_url="http://waflow")
    routes = httpx.AsyncClient(transport=httpx.ASGITransport(app=Starlette(routes=receiver.routes)),
                               base_url="http://waflow")
    try:
        yield receiver, asgi, routes
    finally:
        receiver.gate.set()
        await asgi.aclose()
        await routes.aclose()
        await receiver.stop()


async def hold(receiver: GatedReceiver, client: httpx.AsyncClient, body: dict[str, Any]) -> asyncio.Task[Any]:
    """POST `body` and return once the writer holds it uncommitted (its answer waits for the gate)."""
    receiver.queued.clear()
    task = asyncio.create_task(post(client, PATH, body))
    await receiver.queued.wait()
    return task


async def test_beyond_the_bound_503_with_retry_after_and_nothing_stored(
    gated: tuple[GatedReceiver, httpx.AsyncClient, httpx.AsyncClient], store: Store
) -> None:
    receiver, asgi, routes = gated
    held = await hold(receiver, asgi, doc("wamid.A", 3, "34600000001"))  # 3 events: the bound
    await receiver.entered.wait()  # inside its commit, not durable
    assert receiver.writer.uncommitted_events == 3
    before = overloaded()

    shed = doc("wamid.B", 2, "34600000002")
    answers = [await post(asgi, PATH, shed), await post(routes, PATH, shed),
               await post(asgi, PATH, b"{not json")]  # a dead letter would be stored too: shed as well
    for r in answers:
        assert r.status_code == 503, r.text
        assert r.headers["retry-after"] == str(RETRY_AFTER_S)
    assert overloaded() == before + 3
    assert receiver.writer.uncommitted_events == 3  # nothing of the shed POSTs queued

    receiver.gate.set()
    assert (await held).status_code == 200
    assert [r["provider_message_id"] for r in await inbox_rows(store)] == ["wamid.A1", "wamid.A2", "wamid.A3"]
    assert await dead_letter_rows(store) == []
    assert [c["wa_id"] for c in await contact_rows(store)] == ["34600000001"]  # not the shed sender
    assert receiver.writer.uncommitted_events == 0

    # Meta's retry of the shed POST, once there is room, is taken like a first delivery
    assert (await post(asgi, PATH, shed)).status_code == 200
    assert {r["provider_message_id"] for r in await inbox_rows(store)} >= {"wamid.B1", "wamid.B2"}
    assert overloaded() == before + 3


async def test_below_the_bound_taken_and_200(
    gated: tuple[GatedReceiver, httpx.AsyncClient, httpx.AsyncClient], store: Store
) -> None:
    receiver, asgi, _routes = gated
    before = overloaded()
    first = await hold(receiver, asgi, doc("wamid.A", 2, "34600000001"))
    await receiver.entered.wait()
    second = await hold(receiver, asgi, doc("wamid.B", 1, "34600000002"))  # 2 + 1 ≤ 3: queued behind
    assert receiver.writer.uncommitted_events == 3
    assert overloaded() == before  # neither was shed

    third = await post(asgi, PATH, doc("wamid.C", 1, "34600000003"))  # 3 + 1 > 3
    assert third.status_code == 503
    assert overloaded() == before + 1

    receiver.gate.set()
    assert [(await t).status_code for t in (first, second)] == [200, 200]
    ids = [r["provider_message_id"] for r in await inbox_rows(store)]
    assert sorted(ids) == ["wamid.A1", "wamid.A2", "wamid.B1"]
    assert receiver.writer.uncommitted_events == 0


async def test_an_unbounded_writer_never_sheds_and_the_default_is_bounded() -> None:
    assert config().max_uncommitted_events == 10_000
    gate = asyncio.Event()

    async def commit(requests: Sequence[WriteRequest]) -> list[WriteOutcome]:
        await gate.wait()
        return [WriteOutcome(new=1) for _ in requests]

    writer = InboxWriter(commit, max_uncommitted_events=None)
    futures = [writer.submit(InboxRequest(ParsedWebhook(), utcnow())) for _ in range(50)]
    assert writer.uncommitted_events == 50
    gate.set()
    await asyncio.gather(*futures)
    assert writer.uncommitted_events == 0
    await writer.stop()


async def test_writer_bound_counts_until_resolved_and_takes_one_large_request() -> None:
    gate = asyncio.Event()
    bad = InboxRequest(ParsedWebhook(), utcnow())

    async def commit(requests: Sequence[WriteRequest]) -> list[WriteOutcome]:
        await gate.wait()
        if any(r is bad for r in requests):
            raise RuntimeError("constraint violated")
        return [WriteOutcome(new=1) for _ in requests]

    writer = InboxWriter(commit, max_uncommitted_events=2)
    one = InboxRequest(ParsedWebhook(), utcnow())  # size 1 (an empty body counts one)
    first, second = writer.submit(one), writer.submit(bad)
    with pytest.raises(WriterOverloadedError) as refused:
        writer.submit(one)
    assert (refused.value.uncommitted, refused.value.size, refused.value.bound) == (2, 1, 2)
    gate.set()
    assert (await first).new == 1
    with pytest.raises(RuntimeError, match="constraint"):
        await second  # failed alone after the batch failed: no longer counted either
    assert writer.uncommitted_events == 0
    # with nothing uncommitted, a request larger than the bound is still taken (else it could never be)
    large = InboxRequest(parse_webhook(wire(doc("wamid.L", 5, "34600000005"))), utcnow())
    assert large.size == 5
    assert (await writer.submit(large)).new == 1
    await writer.stop()


def test_the_server_setting_reaches_the_receiver(tmp_path: Path) -> None:
    from waflow.config import Settings
    from waflow.server.parts import webhook_config

    number = {"phone_number_id": "1", "token": "t", "app_secret": "s", "verify_token": "v"}
    default = Settings(numbers=[number], store_url=str(tmp_path / "x.db"))
    assert webhook_config(default, status_processor=True).max_uncommitted_events == 10_000
    chosen = Settings(numbers=[number], server={"webhook_max_uncommitted_events": 7},
                      store_url=str(tmp_path / "x.db"))
    assert webhook_config(chosen, status_processor=True).max_uncommitted_events == 7
    with pytest.raises(ValueError, match="webhook_max_uncommitted_events"):
        Settings(numbers=[number], server={"webhook_max_uncommitted_events": 0},
                 store_url=str(tmp_path / "x.db"))
    assert webhook_config(default, status_processor=True).max_commit_wait_s == 1.0
    assert config().max_commit_wait_s == 1.0
    waited = Settings(numbers=[number], server={"webhook_max_commit_wait_s": 0.25}, store_url=str(tmp_path / "x.db"))
    assert webhook_config(waited, status_processor=True).max_commit_wait_s == 0.25
    with pytest.raises(ValueError, match="webhook_max_commit_wait_s"):
        Settings(numbers=[number], server={"webhook_max_commit_wait_s": 0}, store_url=str(tmp_path / "x.db"))


def small() -> InboxRequest:
    return InboxRequest(ParsedWebhook(), utcnow())  # size 1 (an empty body counts one)


async def test_time_bound_predicts_the_wait_from_the_measured_commit_rate() -> None:
    clock = Clock()
    gate = asyncio.Event()
    sizes: list[int] = []

    async def commit(requests: Sequence[WriteRequest]) -> list[WriteOutcome]:
        await gate.wait()
        sizes.append(sum(r.size for r in requests))
        clock.now += 0.125 * sizes[-1]  # this database commits 8 events/s (binary-exact)
        return [WriteOutcome(new=1) for _ in requests]

    writer = InboxWriter(commit, max_commit_wait_s=1.0, clock=clock)
    assert writer.commit_rate is None and writer.predicted_wait_s() == 0.0
    gate.set()
    assert (await writer.submit(small())).new == 1  # idle: taken (and measured: 1 event in 0.125 s)
    assert writer.commit_rate == 8.0

    gate.clear()
    admitted = []
    with pytest.raises(WriterTooSlowError) as refused:
        while True:  # each one admitted while the events ahead of it take ≤ 1 s at 8 events/s
            admitted.append(writer.submit(small()))
    assert len(admitted) == 9  # 0..8 events ahead: ≤ 1.0 s; the 10th had 9 ahead
    assert refused.value.wait_s == 1.125 and refused.value.budget_s == 1.0
    assert isinstance(refused.value, WriterOverloadedError)  # the endpoint's 503 path catches both
    assert writer.uncommitted_events == 9  # nothing of the refused one queued

    gate.set()
    assert [(await f).new for f in admitted] == [1] * 9  # every admitted request is committed
    assert sizes == [1, 9] and writer.commit_rate == 8.0
    assert writer.uncommitted_events == 0 and writer.predicted_wait_s() == 0.0

    # the request's own events do not count (a rate from small commits understates a big batch): one event
    # ahead (0.125 s) and a 50-event request is taken; and with nothing waiting anything is taken
    gate.clear()
    first = writer.submit(small())
    big = InboxRequest(parse_webhook(wire(doc("wamid.L", 50, "34600000005"))), utcnow())
    assert big.size == 50
    second = writer.submit(big)
    gate.set()
    assert [(await f).new for f in (first, second)] == [1, 1]
    assert writer.commit_rate == 8.0
    await writer.stop()


async def test_time_bound_refuses_behind_a_stalled_commit_and_takes_it_once_done() -> None:
    clock = Clock()
    gate, entered = asyncio.Event(), asyncio.Event()

    async def commit(requests: Sequence[WriteRequest]) -> list[WriteOutcome]:
        entered.set()
        await gate.wait()
        clock.now += 0.001
        return [WriteOutcome(new=1) for _ in requests]

    writer = InboxWriter(commit, max_commit_wait_s=1.0, clock=clock)
    gate.set()
    await writer.submit(small())  # a fast database: 1,000 events/s measured
    gate.clear()
    held = writer.submit(small())
    await entered.wait()  # inside its commit
    clock.now += 0.9
    behind = writer.submit(small())  # the oldest waited 0.9 s: within the budget
    clock.now += 0.2  # the commit stalls: the rate (updated when a commit ends) cannot see it, the age does
    assert writer.predicted_wait_s() == pytest.approx(1.1)
    with pytest.raises(WriterTooSlowError, match="exceeds the budget of 1 s"):
        writer.submit(small())
    assert writer.uncommitted_events == 2
    gate.set()
    assert [(await f).new for f in (held, behind)] == [1, 1]
    assert writer.uncommitted_events == 0
    assert (await writer.submit(small())).new == 1  # nothing waits: taken
    await writer.stop()


async def test_time_bound_at_the_endpoint_503_before_parsing_and_nothing_stored(store: Store) -> None:
    clock = Clock()
    receiver = GatedReceiver(config(max_commit_wait_s=0.5), store, path=PATH, clock=clock)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=WebhookApp(receiver)), base_url="http://waflow")
    try:
        held = await hold(receiver, client, doc("wamid.A", 1, "34600000001"))
        await receiver.entered.wait()
        before = overloaded()
        clock.now += 0.6  # the commit has held its request longer than the budget
        shed = doc("wamid.B", 2, "34600000002")
        answers = [await post(client, PATH, shed), await post(client, PATH, b"{not json")]
        for r in answers:  # the unparsable body too: refused before it is parsed (not kept as a dead letter)
            assert r.status_code == 503, r.text
            assert r.headers["retry-after"] == str(RETRY_AFTER_S)
        assert overloaded() == before + 2
        assert receiver.writer.uncommitted_events == 1

        receiver.gate.set()
        assert (await held).status_code == 200
        assert [r["provider_message_id"] for r in await inbox_rows(store)] == ["wamid.A1"]
        assert await dead_letter_rows(store) == []
        assert (await post(client, PATH, shed)).status_code == 200  # the retry, with nothing waiting
        assert {r["provider_message_id"] for r in await inbox_rows(store)} == {"wamid.A1", "wamid.B1", "wamid.B2"}
        assert overloaded() == before + 2
    finally:
        receiver.gate.set()
        await client.aclose()
        await receiver.stop()


async def test_calm_for_counts_from_the_last_request_that_waited_too_long() -> None:
    """The outbox holds resends after an unknown outcome until the intake has kept up a while (`calm_for`)."""
    from waflow.webhooks.writer import FELL_BEHIND_S

    clock = Clock()
    gate, entered = asyncio.Event(), asyncio.Event()

    async def commit(requests: Sequence[WriteRequest]) -> list[WriteOutcome]:
        entered.set()
        await gate.wait()
        return [WriteOutcome(new=1) for _ in requests]

    writer = InboxWriter(commit, clock=clock)
    assert writer.calm_for() == float("inf")  # never behind
    gate.set()
    await writer.submit(small())  # answered at once: still calm
    assert writer.calm_for() == float("inf")
    gate.clear()
    entered.clear()
    held = writer.submit(small())
    await entered.wait()
    clock.now += FELL_BEHIND_S + 0.5  # this request waits longer than FELL_BEHIND_S for its commit
    gate.set()
    await held
    assert writer.calm_for() == 0.0
    clock.now += 3.0
    assert writer.calm_for() == 3.0
    await writer.stop()


def status_doc(wamid: str, at: int) -> dict[str, Any]:
    """A body with one `delivered` status of `wamid`, reported at unix time `at`."""
    value = {"messaging_product": "whatsapp", "metadata": {"display_phone_number": "1", "phone_number_id": PNID},
             "statuses": [{"id": wamid, "status": "delivered", "timestamp": str(at), "recipient_id": "34600000009"}]}
    return {"object": "whatsapp_business_account",
            "entry": [{"id": WABA, "changes": [{"field": "messages", "value": value}]}]}


async def test_a_redelivered_status_restarts_the_intakes_calm(store: Store) -> None:
    """A status reported long before it arrives was redelivered (Meta catching up): more may be on their way,
    so `calm_for` restarts and resends after an unknown outcome wait."""
    from waflow.webhooks.app import REDELIVERED_AFTER_S

    clock = Clock()
    receiver = GatedReceiver(config(), store, path=PATH, clock=clock)
    receiver.gate.set()
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=WebhookApp(receiver)), base_url="http://waflow")
    try:
        now = int(utcnow().timestamp())
        assert (await post(client, PATH, status_doc("wamid.FRESH", now))).status_code == 200
        assert receiver.writer.calm_for() == float("inf")  # on time: still calm
        late = now - int(REDELIVERED_AFTER_S) - 30
        assert (await post(client, PATH, status_doc("wamid.LATE", late))).status_code == 200
        assert receiver.writer.calm_for() == 0.0
        clock.now += 7.0
        assert receiver.writer.calm_for() == 7.0
    finally:
        await client.aclose()
        await receiver.stop()
