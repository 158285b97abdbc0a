"""Running a process: `serve` (uvicorn around `create_app`) and `worker` (the background parts alone)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Iterator

import uvicorn

from waflow.config import Settings
from waflow.logging import configure_logging, uvicorn_log_config
from waflow.process import settle_heap
from waflow.server.app import ServeApp, create_app
from waflow.server.lifecycle import Lifecycle
from waflow.server.parts import build_parts

log = logging.getLogger("waflow.server")


def setup_logging(settings: Settings) -> None:
    configure_logging(settings.log_format, settings.log_level, secrets=settings.secret_values())


class _Server(uvicorn.Server):
    """uvicorn re-raises a caught SIGTERM after its graceful shutdown (exit status -15); a shutdown that went
    as planned exits 0 here, so supervisors can tell it from a crash."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        with super().capture_signals():
            yield
            self._captured_signals.clear()


def serve(settings: Settings, *, host: str | None = None, port: int | None = None) -> None:
    """Run `waflow serve` until SIGTERM / SIGINT: uvicorn stops taking connections, finishes the requests in
    flight, then the lifespan stops the parts within `server.shutdown_timeout_s`."""
    setup_logging(settings)
    app = ServeApp(create_app(settings))
    config = uvicorn.Config(
        app,
        host=host or settings.server.host,
        port=settings.server.port if port is None else port,
        log_config=uvicorn_log_config(),
        log_level=settings.log_level,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=max(1, int(settings.server.shutdown_timeout_s / 2)),
        http="httptools",
        loop="uvloop",
    )
    settle_heap()
    _Server(config).run()


async def run_worker(settings: Settings, *, stop: asyncio.Event | None = None) -> None:
    """`waflow worker`: engine, timers, dispatchers, status processor — until `stop` is set or a signal."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    lifecycle = Lifecycle(build_parts(settings, "worker"))
    try:
        await lifecycle.start()
        settle_heap()
        await stop.wait()
        log.info("stopping: finishing the work in flight")
    finally:
        await lifecycle.stop()


def worker(settings: Settings) -> None:
    setup_logging(settings)
    try:
        import uvloop

        uvloop.run(run_worker(settings))
    except ImportError:  # pragma: no cover
        asyncio.run(run_worker(settings))
