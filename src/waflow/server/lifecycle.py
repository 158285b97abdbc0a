"""Starting and stopping the parts in order; stopping is bounded and leaves unfinished work to the rows.

Start: migrate an empty or old database → deploy `flows_dir` → webhook writer (+ status processor) →
dispatchers → engine → timers → token watch. Stop (after the HTTP server stopped taking requests and answered
the ones in flight): token watch → webhook writer (its commits are already durable) → timers → engine (a round
in progress rolls back: its events stay pending) → dispatchers (sends in flight finish and their outcomes commit;
queued rows stay queued) → status processor → clients, limiters, store. Each stage gets what is left of
`shutdown_timeout_s`; a stage that overruns is cancelled — whatever it held is recovered from the rows
by the next process (expired leases, pending events).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from waflow.api.deploying import FlowRejected, deploy_files, flow_files
from waflow.config import ConfigError
from waflow.server.parts import Parts

log = logging.getLogger("waflow.server")


class Lifecycle:
    def __init__(self, parts: Parts) -> None:
        self.parts = parts
        self.started = False
        self.stopping = False

    async def prepare_store(self) -> None:
        """Migrate the schema (an empty database included) and deploy the flows folder."""
        parts = self.parts
        await parts.store.upgrade()
        folder = parts.settings.flows_dir
        if folder is None:
            return
        if not folder.is_dir():
            raise ConfigError([f"flows_dir: {folder} is not a directory"])
        files = flow_files(folder)
        try:
            results = await deploy_files(parts.store, files)
        except FlowRejected as exc:
            raise ConfigError([f"flows_dir: {p}" for p in exc.problems[:10]], exc.source) from None
        for r in results:
            log.info("flow %s: version %d %s", r.flow_id, r.version, "deployed" if r.created else "already active")

    async def start(self) -> None:
        parts = self.parts
        await self.prepare_store()
        if parts.receiver is not None:
            await parts.receiver.start()
        if parts.status_processor is not None:
            parts.status_processor.start()
        for dispatcher in parts.dispatchers:
            await dispatcher.start()
        if parts.engine is not None:
            parts.engine.start()
        if parts.timers is not None:
            parts.timers.start()
        if parts.token_watch is not None:
            parts.token_watch.start()
        self.started = True
        log.info(
            "waflow %s started: numbers %s, store %s, %d dispatcher(s), engine %s",
            parts.role, ", ".join(parts.clients), parts.store.url.render_as_string(hide_password=True),
            len(parts.dispatchers), "on" if parts.engine else "off",
        )

    async def stop(self, timeout: float | None = None) -> None:  # noqa: ASYNC109
        if self.stopping:
            return
        self.stopping = True
        parts = self.parts
        budget = parts.settings.server.shutdown_timeout_s if timeout is None else timeout
        deadline = time.monotonic() + budget
        stages: list[tuple[str, Callable[[], Awaitable[None]]]] = []
        if parts.token_watch is not None:
            stages.append(("token watch", parts.token_watch.stop))
        if parts.receiver is not None:
            stages.append(("webhook writer", parts.receiver.stop))
        if parts.timers is not None:
            stages.append(("timer scheduler", parts.timers.stop))
        if parts.engine is not None:
            stages.append(("engine", parts.engine.stop))
        for i, dispatcher in enumerate(parts.dispatchers):
            stages.append((f"dispatcher {i}", dispatcher.stop))
        if parts.status_processor is not None:
            stages.append(("status processor", parts.status_processor.stop))
        for name, stop in stages:
            await _bounded(name, stop, deadline)
        for client in parts.clients.values():
            await _bounded("client", client.aclose, deadline + 2)
        await _bounded("limiters", parts.limiters.aclose, deadline + 2)
        await _bounded("store", parts.store.close, deadline + 5)
        log.info("waflow %s stopped", parts.role)


async def _bounded(name: str, stop: Callable[[], Awaitable[None]], deadline: float) -> None:
    remaining = max(0.1, deadline - time.monotonic())
    try:
        await asyncio.wait_for(stop(), remaining)
    except TimeoutError:
        log.warning("%s did not stop within the shutdown timeout; its unfinished work stays in the store", name)
    except Exception:
        log.exception("stopping %s failed", name)
