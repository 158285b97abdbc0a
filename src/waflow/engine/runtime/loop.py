"""The lifecycle every background part of the engine shares: `start()` / `stop()` and `async with`."""

from __future__ import annotations

import asyncio
from typing import Self

from waflow.tasks import finish


class BackgroundLoop:
    """Runs `run()` as a task until `stop()`; `run()` loops while `_stopping` is not set."""

    task_name = "waflow-background-loop"

    def __init__(self) -> None:
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    async def __aenter__(self) -> Self:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def start(self) -> None:
        if self._task is None:
            self._stopping.clear()
            self._task = asyncio.create_task(self.run(), name=self.task_name)

    async def stop(self) -> None:
        """Ask `run()` to return after its current round, and wait for it (see `waflow.tasks`)."""
        self._stopping.set()
        self._interrupt()
        if self._task is not None:
            task, self._task = self._task, None
            await finish(task)

    def _interrupt(self) -> None:
        """Cut short the wait between rounds (a loop that waits on `_stopping` itself needs nothing here)."""

    async def run(self) -> None:
        raise NotImplementedError
