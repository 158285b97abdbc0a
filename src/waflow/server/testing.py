"""`waflow serve` as a separate process against an in-process emulator (tests and `bench/e2e_*`), and a
`ManualClock` for the parts that take one (the token watch)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import uvicorn

from waflow.config import Settings, hash_api_key
from waflow.emulator import EmulatorHandle

if TYPE_CHECKING:
    from waflow.server.intake import Intake

API_KEY = "serve-process-admin-key-01234"
# What `write_config` sets unless told otherwise: the rate limits and connection limits of `[server]` out of
# the way. The suites that start `waflow serve` through it try other promises from one loopback address (a
# reliability scenario sends hundreds of wrong keys on purpose, a storm opens 64 connections beside the
# emulator's); `tests/server/test_rate_limits.py` and `test_intake.py` try the limits themselves.
LIFTED_LIMITS: dict[str, Any] = {
    "auth_failures_per_s": 1_000_000, "auth_failures_burst": 1_000_000,
    "api_requests_per_s": 1_000_000, "api_burst": 1_000_000,
    "intake_requests_per_s": 10_000_000, "intake_burst": 10_000_000,
    "max_connections": 100_000, "max_connections_per_address": 100_000,
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_config(folder: Path, emulator: EmulatorHandle, *, port: int, flows_dir: Path | None = None,
                 server: Mapping[str, Any] | None = None, top: Mapping[str, Any] | None = None,
                 store_url: str | None = None, sections: Mapping[str, Mapping[str, Any]] | None = None,
                 number: Mapping[str, Any] | None = None, lift_limits: bool = True) -> Path:
    """A waflow.toml for a serve process talking to `emulator` (token in a file, secret from the emulator).
    `store_url`: default a SQLite file in `folder`; `sections`: more tables (`{"outbox": {"lease_s": 6}}`);
    `number`: more settings of the number (`{"app_id": emulator.config.app_id}`); `lift_limits`: put
    `LIFTED_LIMITS` under `[server]` (the settings in `server` win), False: the defaults."""
    server = {**(LIFTED_LIMITS if lift_limits else {}), **(server or {})}
    cfg = emulator.config
    token = folder / "access-token"
    token.write_text(cfg.access_token)
    db = folder / "waflow.db"
    lines = [f"store_url = {_toml(store_url or f'sqlite+aiosqlite:///{db}')}", 'log_level = "warning"']
    if flows_dir is not None:
        lines.append(f"flows_dir = {_toml(str(flows_dir))}")
    lines += [f"{k} = {_toml(v)}" for k, v in (top or {}).items()]
    lines += ["", "[graph]", f"base_url = {_toml(emulator.base_url)}", "", "[server]", f"port = {port}"]
    lines += [f"{k} = {_toml(v)}" for k, v in (server or {}).items()]
    lines += ["", "[api]", f"keys = [{_toml(hash_api_key(API_KEY))}]", "", "[http]", 'allow_hosts = ["127.0.0.1"]']
    lines += ["", "[[numbers]]", f"phone_number_id = {_toml(cfg.phone_number_id)}", f"waba_id = {_toml(cfg.waba_id)}",
              f"token = {_toml(f'file:{token}')}", f"app_secret = {_toml(cfg.app_secret)}",
              f"verify_token = {_toml(cfg.verify_token)}", f"throughput = {cfg.throughput_mps}"]
    lines += [f"{k} = {_toml(v)}" for k, v in (number or {}).items()]
    for name, table in (sections or {}).items():
        lines += ["", f"[{name}]", *(f"{k} = {_toml(v)}" for k, v in table.items())]
    path = folder / "waflow.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


class ManualClock:
    """A clock for the token watch (`build_parts(..., token_clock=clock)`) that moves only when told to:
    `advance(days=1)` wakes whatever sleeps past the new time, so a test skips a day without sleeping."""

    def __init__(self, start: float | None = None) -> None:
        self._now = time.time() if start is None else start
        self._moved = asyncio.Event()

    def now(self) -> float:
        return self._now

    def advance(self, *, seconds: float = 0, hours: float = 0, days: float = 0) -> None:
        step = seconds + 3600 * hours + 86400 * days
        if step < 0:
            raise ValueError("the clock only moves forward")
        self._now += step
        moved, self._moved = self._moved, asyncio.Event()
        moved.set()

    async def sleep(self, seconds: float, wake: asyncio.Event) -> None:
        until = self._now + max(0.0, seconds)
        while self._now < until and not wake.is_set():
            moved = asyncio.ensure_future(self._moved.wait())
            woken = asyncio.ensure_future(wake.wait())
            try:
                await asyncio.wait({moved, woken}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                moved.cancel()
                woken.cancel()


class ServeProcess:
    """`python -m waflow.server -c <config>`; `await start()` waits for /readyz."""

    def __init__(self, config: Path, port: int, *, log: Path | None = None,
                 env: Mapping[str, str] | None = None, verify: ssl.SSLContext | None = None,
                 command: Sequence[str] | None = None) -> None:
        """`verify`: the process speaks HTTPS (`[server] tls_*`); this context trusts its certificate.
        `command`: what to run instead of `python -m waflow.server -c <config>` (e.g. `waflow serve` with flags)."""
        self.config = config
        self.command = list(command) if command is not None else [sys.executable, "-m", "waflow.server", "-c",
                                                                  str(config)]
        self.env = dict(env or {})
        self.port = port
        self.verify: ssl.SSLContext | bool = verify if verify is not None else True
        self.url = f"{'https' if verify is not None else 'http'}://127.0.0.1:{port}"
        self.log = log or config.with_name("serve.log")
        self.proc: subprocess.Popen[bytes] | None = None

    def launch(self) -> None:
        """Start the process and return at once (`start` also waits until it is ready)."""
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(self.command, stdout=out, stderr=out, env=env, stdin=subprocess.DEVNULL)

    async def start(self, timeout: float = 30.0) -> None:  # noqa: ASYNC109
        self.launch()
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(verify=self.verify) as client:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    tail = self.log.read_text()[-2000:]
                    raise RuntimeError(f"waflow serve exited with {self.proc.returncode}: {tail}")
                try:
                    if (await client.get(f"{self.url}/readyz", timeout=1)).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.05)
        raise TimeoutError(f"waflow serve not ready after {timeout} s: {self.log.read_text()[-2000:]}")

    def terminate(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)

    async def wait(self, timeout: float = 30.0) -> int:  # noqa: ASYNC109
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            if time.monotonic() > deadline:
                await self._dump_stacks()
                self.proc.kill()
                raise TimeoutError(f"waflow serve did not exit within {timeout} s: {self.log.read_text()[-12000:]}")
            await asyncio.sleep(0.05)
        return int(self.proc.returncode)

    async def _dump_stacks(self) -> None:
        """Ask the stuck process for its task and thread stacks (they land in its log)."""
        assert self.proc is not None
        for sig in (signal.SIGUSR2, signal.SIGUSR1):
            self.proc.send_signal(sig)
            await asyncio.sleep(0.5)  # the process writes its stacks; nothing to wait on from outside

    async def stop(self, timeout: float = 30.0) -> int:  # noqa: ASYNC109
        if self.proc is None or self.proc.poll() is not None:
            return 0 if self.proc is None else int(self.proc.returncode)
        self.terminate()
        return await self.wait(timeout)

    def api(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=10,
                                 verify=self.verify)


class _InProcessServer(uvicorn.Server):
    """`waflow serve`'s uvicorn inside a test's event loop: the signals stay the test runner's."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.asynccontextmanager
async def serve_in_process(settings: Settings, *, clock: ManualClock | None = None,
                           host: str = "127.0.0.1") -> AsyncIterator[tuple[str, Intake]]:
    """What `waflow serve` runs (`serve_app` under `uvicorn_config`: intake, guarded protocol, TLS) on a free
    port of `host` in this event loop, lifespan included; yields (base URL, the intake). `clock`: the rate
    limits' time (a `ManualClock`: the test moves it)."""
    from waflow.server.run import serve_app, uvicorn_config

    app = serve_app(settings, clock=clock.now if clock is not None else None)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    sock.listen(2048)
    sock.setblocking(False)
    port = sock.getsockname()[1]
    server = _InProcessServer(uvicorn_config(settings, app, host=host, port=port, log_config=None,
                                             timeout_graceful_shutdown=1))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("waflow serve (in process) exited during startup")
            await asyncio.sleep(0.005)  # uvicorn offers no event for "listening"
        yield f"{'https' if settings.server.tls else 'http'}://{host}:{port}", app
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await task
        app.guard.close()
        sock.close()
