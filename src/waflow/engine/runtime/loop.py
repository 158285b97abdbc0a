"""The lifecycle every background part of the engine shares: `start()` / `stop()` and `async with`."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Self


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
        self._stopping.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def run(self) -> None:
        raise NotImplementedError
