"""Process-wide settings of a long-running waflow process."""

from __future__ import annotations

import asyncio
import faulthandler
import gc
import io
import logging
import os
import signal
import threading


def settle_heap() -> None:
    """Move everything allocated at start-up (modules, SQLAlchemy and pydantic machinery, the app)
    out of the garbage collector's view.

    Python's full (generation 2) collection walks every tracked object; in `waflow serve` and the
    webhook endpoint that is ~100,000 start-up objects that never die, and each full collection
    stalled the event loop for 40-60 ms — the whole p99 of the webhook answers under load
    (measured with gc callbacks during `bench/webhooks_ingest.py`). Frozen, a full collection
    only walks what was allocated since, and took about 1 ms.
    """
    gc.collect()
    gc.freeze()


def dump_stacks_on_sigusr1() -> None:
    """`kill -USR1 <pid>` writes every thread's Python stack to stderr, and, when the process runs an event
    loop, every asyncio task's stack to the log: what an operator (or a test whose process did not stop)
    needs to see where a process hangs. The thread dump comes from `faulthandler`, so it works even when the
    event loop itself is blocked."""
    faulthandler.register(signal.SIGUSR1, all_threads=True, chain=False)


def log_tasks(logger: logging.Logger) -> None:
    """Log the stack of every asyncio task of the running loop (one warning per task)."""
    for task in asyncio.all_tasks():
        out = io.StringIO()
        task.print_stack(limit=12, file=out)
        logger.warning("task %s:\n%s", task.get_name(), out.getvalue())


def exit_if_still_running_after(seconds: float, logger: logging.Logger) -> threading.Timer:
    """Started when a stop begins: should the process still be running `seconds` later (a part stuck past its
    shutdown budget, or a task the event loop's final clean-up waits on forever), dump every thread's stack,
    log it, and exit with status 1. What was unfinished stays in the store for the next process (expired leases,
    pending events): the same as when a supervisor kills it, only sooner and with the stacks to show why."""

    def give_up() -> None:
        logger.error("still running %.0f s after the stop began: exiting now (status 1)", seconds)
        faulthandler.dump_traceback(all_threads=True)
        os._exit(1)

    timer = threading.Timer(seconds, give_up)
    timer.daemon = True
    timer.start()
    return timer
