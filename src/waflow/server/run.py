"""Running a process: `serve` (uvicorn around `create_app`) and `worker` (the background parts alone)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import Iterator
from typing import Any

import uvicorn

from waflow.config import Settings
from waflow.logging import configure_logging, uvicorn_log_config
from waflow.process import dump_stacks_on_sigusr1, exit_if_still_running_after, log_tasks, settle_heap
from waflow.server.app import ServeApp, create_app
from waflow.server.intake import Guard, Intake, IntakeLimits
from waflow.server.lifecycle import Lifecycle
from waflow.server.parts import build_parts
from waflow.server.protocol import protocol_class
from waflow.server.ratelimit import Clock

log = logging.getLogger("waflow.server")


def setup_logging(settings: Settings) -> None:
    configure_logging(settings.log_format, settings.log_level, secrets=settings.secret_values())


class _Server(uvicorn.Server):
    """uvicorn re-raises a caught SIGTERM after its graceful shutdown (exit status -15); a shutdown that went
    as planned exits 0 here, so supervisors can tell it from a crash. A stop that does not finish within its
    budget exits 1 (`exit_if_still_running_after`)."""

    def __init__(self, config: uvicorn.Config, *, shutdown_timeout_s: float, guard: Guard | None = None) -> None:
        super().__init__(config)
        self.shutdown_timeout_s = shutdown_timeout_s
        self.guard = guard

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        with super().capture_signals():
            yield
            self._captured_signals.clear()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        _log_tasks_on_sigusr2()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        exit_if_still_running_after(_exit_budget_s(self.shutdown_timeout_s), log)
        try:
            await super().shutdown(sockets)
        finally:
            if self.guard is not None:
                self.guard.close()


def _exit_budget_s(shutdown_timeout_s: float) -> float:
    """How long a stopping process may take before it exits anyway: uvicorn's graceful half, the parts' budget,
    the clients' and the store's few seconds past it (`Lifecycle.stop`), and a margin for a loaded machine."""
    return 1.5 * shutdown_timeout_s + 15.0


def _log_tasks_on_sigusr2() -> None:
    """`kill -USR2 <pid>` logs every asyncio task's stack (SIGUSR1 dumps the threads, even with a blocked loop)."""
    with contextlib.suppress(NotImplementedError, RuntimeError):
        asyncio.get_running_loop().add_signal_handler(signal.SIGUSR2, log_tasks, log)


def serve_app(settings: Settings, *, clock: Clock | None = None, app: ServeApp | None = None) -> Intake:
    """What `waflow serve` hands to uvicorn: the bounded intake (`waflow.server.intake`) around `ServeApp`.
    `clock`: the time of the rate limits' buckets (tests pass one they move by hand)."""
    limits = IntakeLimits.from_settings(settings)
    guard = Guard(limits, clock=clock) if clock is not None else Guard(limits)
    return Intake(app or ServeApp(create_app(settings)), guard)


def uvicorn_config(settings: Settings, app: Intake, *, host: str | None = None, port: int | None = None,
                   **overrides: Any) -> uvicorn.Config:
    """uvicorn's configuration for `waflow serve`: TLS from `[server] tls_*`, the guarded protocol (header
    deadline and size, connection limits, slow lane), the keep-alive timeout, no WebSocket, and no
    `X-Forwarded-*` handling of uvicorn's own (the intake believes them from `trusted_proxies` only)."""
    server = settings.server
    kw: dict[str, Any] = {
        "host": host or server.host,
        "port": server.port if port is None else port,
        "log_config": uvicorn_log_config(),
        "log_level": settings.log_level,
        "access_log": False,
        "lifespan": "on",
        "timeout_graceful_shutdown": max(1, int(server.shutdown_timeout_s / 2)),
        "timeout_keep_alive": max(1, round(server.keep_alive_timeout_s)),
        "http": protocol_class(app.guard),
        "ws": "none",
        "proxy_headers": False,
        "server_header": False,
        "loop": "uvloop",
    }
    if server.tls:
        context = server.tls_context()
        kw["ssl_context_factory"] = lambda _config, _default: context
    kw.update(overrides)
    return uvicorn.Config(app, **kw)


def serve(settings: Settings, *, host: str | None = None, port: int | None = None) -> None:
    """Run `waflow serve` until SIGTERM / SIGINT: uvicorn stops taking connections, finishes the requests in
    flight, then the lifespan stops the parts within `server.shutdown_timeout_s`."""
    setup_logging(settings)
    if settings.server.tls:
        try:
            settings.server.tls_context()  # checked at load; the files may have changed since
        except ValueError as exc:
            log.error("configuration error: %s", exc)
            raise SystemExit(2) from None
    app = serve_app(settings)
    config = uvicorn_config(settings, app, host=host, port=port)
    settle_heap()
    dump_stacks_on_sigusr1()
    _Server(config, shutdown_timeout_s=settings.server.shutdown_timeout_s, guard=app.guard).run()


class _SideServer(uvicorn.Server):
    """A uvicorn server beside the worker's own work: the worker's signal handlers stop it (uvicorn's would take
    SIGTERM over and raise it again after serving, ending the process before the worker's graceful stop)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def run_worker(settings: Settings, *, stop: asyncio.Event | None = None) -> None:
    """`waflow worker`: engine, timers, dispatchers, status processor — until `stop` is set or a signal."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    _log_tasks_on_sigusr2()
    parts = build_parts(settings, "worker")
    lifecycle = Lifecycle(parts)
    http: uvicorn.Server | None = None
    http_task: asyncio.Task[None] | None = None
    try:
        await lifecycle.start()
        if settings.server.worker_port is not None:  # health, readiness and metrics of this worker
            from waflow.server.app import health_app

            http = _SideServer(uvicorn.Config(
                health_app(parts), host=settings.server.host, port=settings.server.worker_port, lifespan="off",
                log_config=uvicorn_log_config(), access_log=False, ws="none",
            ))
            http_task = asyncio.create_task(http.serve(), name="waflow-worker-http")
            log.info("worker health, readiness and metrics on %s:%d", settings.server.host, settings.server.worker_port)
        settle_heap()
        await stop.wait()
        log.info("stopping: finishing the work in flight")
        exit_if_still_running_after(_exit_budget_s(settings.server.shutdown_timeout_s), log)
    finally:
        if http is not None and http_task is not None:
            http.should_exit = True
            with contextlib.suppress(Exception):
                await http_task
        await lifecycle.stop()


def worker(settings: Settings) -> None:
    setup_logging(settings)
    dump_stacks_on_sigusr1()
    try:
        import uvloop

        uvloop.run(run_worker(settings))
    except ImportError:  # pragma: no cover
        asyncio.run(run_worker(settings))
