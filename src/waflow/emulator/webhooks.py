"""Outbound webhooks: envelope, signature, delivery with retries, and the unreliable-delivery modes.

Bodies are serialised ASCII-escaped (`ensure_ascii=True`, compact separators) and signed over those
exact bytes, as Meta does; a retry resends the identical bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import hmac
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field

from .config import EmulatorConfig

log = logging.getLogger("waflow.emulator.webhooks")

MAX_UPDATES_PER_POST = 1000


def sign(app_secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


def encode(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, ensure_ascii=True, separators=(",", ":")).encode("ascii")


class DeliveryModes(BaseModel):
    """How unreliable delivery is; all off by default."""

    model_config = ConfigDict(extra="forbid")

    duplicate_rate: float = Field(0.0, ge=0.0, le=1.0)  # each POST is sent twice with this probability
    reorder: bool = False  # shuffle updates collected within `window_s`
    batch_size: int = Field(1, ge=1, le=MAX_UPDATES_PER_POST)  # >1: several updates per POST
    window_s: float = Field(0.02, ge=0.0)  # how long to collect updates for a batch / reorder
    batch_entries: bool = False  # in a batch, put each change in its own entry (else one entry, many changes)
    fail_next: int = 0  # answer-independent: treat the next N attempts as transport failures (not sent)


@dataclass(slots=True)
class Update:
    """One update: a `messages` value item (message or status) or a whole value of another field."""

    field: str
    kind: str  # "messages" | "statuses" | "" (the item is the whole value)
    item: dict[str, Any]
    contacts: list[dict[str, Any]] | None = None
    done: asyncio.Future[bool] | None = None


@dataclass(slots=True)
class Attempt:
    """One POST the emulator made (or tried to make): what tests inspect."""

    body: bytes
    signature: str
    attempt: int
    status_code: int | None
    error: str | None
    at: float
    updates: int

    @property
    def ok(self) -> bool:
        return self.status_code == 200

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(slots=True)
class _Post:
    body: bytes
    updates: list[Update]
    attempt: int = 1
    extra_copies: int = 0
    resolved: bool = field(default=False)


class WebhookDispatcher:
    def __init__(self, config: EmulatorConfig, clock: Callable[[], float], seed: int | None = None) -> None:
        self._config = config
        self._clock = clock
        self.modes = DeliveryModes()
        self.attempts: list[Attempt] = []
        self.dropped: list[bytes] = []  # bodies given up after the retry schedule
        self._queue: asyncio.Queue[Update] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._client: httpx.AsyncClient | None = None
        self._rng = random.Random(seed)
        self._inflight = 0
        self._retry_handles: set[asyncio.TimerHandle] = set()

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        self._queue = asyncio.Queue()
        self._client = httpx.AsyncClient(timeout=self._config.webhook_timeout_s, trust_env=False)
        self._slots = asyncio.Semaphore(max(1, self._config.webhook_concurrency))
        self._tasks = [asyncio.create_task(self._pump())]

    async def stop(self) -> None:
        for h in self._retry_handles:
            h.cancel()
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        self._tasks = []
        if self._client is not None:
            await self._client.aclose()

    def set_modes(self, **changes: Any) -> DeliveryModes:
        self.modes = DeliveryModes.model_validate(self.modes.model_dump() | changes)
        return self.modes

    # -- building --------------------------------------------------------------------------
    def envelope(self, updates: list[Update]) -> dict[str, Any]:
        """Group consecutive updates of one field/kind into changes; all under the WABA's entry."""
        cfg = self._config
        changes: list[dict[str, Any]] = []
        for u in updates:
            last = changes[-1] if changes else None
            if (
                u.kind
                and last is not None
                and last["field"] == u.field
                and u.kind in last["value"]
                and (u.contacts or None) == (last["value"].get("contacts") or None)
            ):
                last["value"][u.kind].append(u.item)
                continue
            if u.kind:
                value: dict[str, Any] = {
                    "messaging_product": "whatsapp",
                    "metadata": {"display_phone_number": cfg.display_phone_number,
                                 "phone_number_id": cfg.phone_number_id},
                }
                if u.contacts:
                    value["contacts"] = u.contacts
                value[u.kind] = [u.item]
            else:
                value = u.item
            changes.append({"field": u.field, "value": value})
        now = int(self._clock())
        if self.modes.batch_entries and len(changes) > 1:
            entries = [self._entry([c], now) for c in changes]
        else:
            entries = [self._entry(changes, now)]
        return {"object": "whatsapp_business_account", "entry": entries}

    def _entry(self, changes: list[dict[str, Any]], now: int) -> dict[str, Any]:
        entry: dict[str, Any] = {"id": self._config.waba_id, "changes": changes}
        if any(c["field"] != "messages" for c in changes):
            entry["time"] = now
        return entry

    # -- delivery --------------------------------------------------------------------------
    def submit(self, update: Update) -> None:
        if self._queue is None:
            raise RuntimeError("webhook dispatcher is not running")
        self._queue.put_nowait(update)

    async def idle(self, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        """Wait until nothing is queued, in flight or waiting to be retried."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if (self._queue is None or self._queue.empty()) and self._inflight == 0 and not self._retry_handles:
                return
            await asyncio.sleep(0.005)
        raise TimeoutError("webhook deliveries still pending")

    async def _collect(self, first: Update) -> list[Update]:
        assert self._queue is not None
        batch = [first]
        m = self.modes
        if m.batch_size > 1 or m.reorder:
            limit = m.batch_size if m.batch_size > 1 else MAX_UPDATES_PER_POST
            deadline = time.monotonic() + m.window_s
            while len(batch) < limit:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(self._queue.get(), remaining))
                except TimeoutError:
                    break
            if m.reorder:
                self._rng.shuffle(batch)
        return batch

    async def _pump(self) -> None:
        """One reader forms the POSTs (so a batch sees every queued update); deliveries run concurrently."""
        assert self._queue is not None
        while True:
            first = await self._queue.get()
            if not self._config.callback_url:
                # Nobody to tell: skip encoding and signing (load runs without a receiver stay cheap).
                if first.done is not None and not first.done.done():
                    first.done.set_result(False)
                continue
            self._inflight += 1
            try:
                batch = await self._collect(first)
                groups = [batch] if self.modes.batch_size > 1 else [[u] for u in batch]
                for group in groups:
                    post = _Post(encode(self.envelope(group)), group)
                    if self._rng.random() < self.modes.duplicate_rate:
                        post.extra_copies = 1
                    self._spawn(functools.partial(self._deliver_in_slot, post))
            except Exception:  # the pump must survive anything
                log.exception("webhook pump error")
            finally:
                self._inflight -= 1

    async def _deliver_in_slot(self, post: _Post) -> None:
        async with self._slots:
            await self._deliver(post)

    async def _deliver(self, post: _Post) -> None:
        cfg = self._config
        url = cfg.callback_url
        if not url:
            self._resolve(post, False)
            return
        signature = sign(cfg.app_secret, post.body)
        status: int | None = None
        error: str | None = None
        if self.modes.fail_next > 0:
            self.modes.fail_next -= 1
            error = "injected transport failure"
        else:
            try:
                assert self._client is not None
                resp = await self._client.post(
                    url,
                    content=post.body,
                    headers={
                        "Content-Type": "application/json",
                        "X-Hub-Signature-256": signature,
                        "X-Hub-Signature": "sha1=" + hmac.new(cfg.app_secret.encode(), post.body, "sha1").hexdigest(),
                        "User-Agent": "facebookexternalua",
                    },
                )
                status = resp.status_code
            except httpx.HTTPError as exc:
                error = type(exc).__name__
        self.attempts.append(Attempt(post.body, signature, post.attempt, status, error, time.time(), len(post.updates)))
        ok = status == 200
        self._resolve(post, ok)
        if ok:
            if post.extra_copies:
                post.extra_copies -= 1
                dup = _Post(post.body, post.updates, post.attempt + 1, resolved=True)
                await self._deliver(dup)
            return
        schedule = cfg.webhook_retry_schedule
        if post.attempt - 1 < len(schedule):
            delay = schedule[post.attempt - 1]
            post.attempt += 1
            loop = asyncio.get_running_loop()
            handle: asyncio.TimerHandle

            def fire() -> None:
                self._retry_handles.discard(handle)
                self._spawn(functools.partial(self._deliver_in_slot, post))

            handle = loop.call_later(delay, fire)
            self._retry_handles.add(handle)
        else:
            self.dropped.append(post.body)

    def _spawn(self, make: Callable[[], Awaitable[None]]) -> None:
        """Run `make()` as a tracked task; the coroutine is created inside so a cancelled task leaks nothing."""
        self._inflight += 1

        async def run() -> None:
            try:
                await make()
            finally:
                self._inflight -= 1

        task = asyncio.create_task(run())
        self._tasks.append(task)
        task.add_done_callback(lambda t: self._tasks.remove(t) if t in self._tasks else None)

    @staticmethod
    def _resolve(post: _Post, ok: bool) -> None:
        if post.resolved:
            return
        post.resolved = True
        for u in post.updates:
            if u.done is not None and not u.done.done():
                u.done.set_result(ok)


async def verify_handshake(callback_url: str, verify_token: str, *, timeout: float = 5.0) -> bool:  # noqa: ASYNC109
    """Do Meta's GET hub.challenge handshake against a receiver; True if it echoed the challenge."""
    challenge = str(random.randint(10**8, 10**9))
    params = {"hub.mode": "subscribe", "hub.challenge": challenge, "hub.verify_token": verify_token}
    async with httpx.AsyncClient(timeout=timeout, trust_env=False) as client:
        try:
            resp = await client.get(callback_url, params=params)
        except httpx.HTTPError:
            return False
    return resp.status_code == 200 and resp.content == challenge.encode()
