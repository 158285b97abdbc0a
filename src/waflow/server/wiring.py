"""Wake-ups between the parts of one process, so work moves on at once instead of at the next poll.

A webhook answered 200 wakes the engine; an engine round that applied events wakes the dispatchers (the
replies it wrote are due). Polling stays as the fallback (and is what other processes rely on).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import Response

from waflow.engine.runtime.worker import EngineWorker
from waflow.webhooks import WebhookReceiver

log = logging.getLogger("waflow.engine")


class WakeableEngine(EngineWorker):
    """`EngineWorker` with `notify()`; calls `on_applied` after a round that applied events."""

    on_applied: Callable[[], None] = staticmethod(lambda: None)

    def notify(self) -> None:
        wake = getattr(self, "_wake", None)
        if wake is not None:
            wake.set()

    async def run_once(self) -> int:
        count = await super().run_once()
        if count:
            self.on_applied()
        return count

    async def run(self) -> None:
        self._wake = getattr(self, "_wake", None) or asyncio.Event()
        while not self._stopping.is_set():
            self._wake.clear()
            try:
                count = await self.run_once()
            except Exception:
                log.exception("engine round failed")
                count = 0
            if count == 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.config.poll_interval)

    _wake: asyncio.Event


class NotifyingReceiver(WebhookReceiver):
    """`WebhookReceiver` that wakes the engine once a webhook is durably stored."""

    on_stored: Callable[[], None] = staticmethod(lambda: None)

    async def receive(self, request: Request) -> Response:
        response = await super().receive(request)
        if response.status_code == 200:
            self.on_stored()
        return response
