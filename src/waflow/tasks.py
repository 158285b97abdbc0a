"""Stopping a background task at a safe point instead of wherever a cancellation happens to land.

A loop that is cancelled mid-transaction may have committed on the database's side while its coroutine
never learns so: the dispatcher's claim loop, cancelled right after its claim committed, left the rows it had
just leased to no one (they waited out the lease and the unknown-outcome grace, two minutes, before anyone
sent them). So every background loop of waflow is stopped by a flag it checks between rounds; `finish`
waits for it, and cancels it only when the waiter itself is cancelled (the shutdown budget ran out).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any


async def finish(task: asyncio.Task[Any]) -> None:
    """Wait until `task` (already told to stop) returns; its exception, if any, is raised here.

    Cancelled while waiting (a shutdown timeout), it cancels `task` too and does not wait for it."""
    try:
        await asyncio.wait({task})
    except asyncio.CancelledError:
        task.cancel()
        raise
    with contextlib.suppress(asyncio.CancelledError):
        await task
