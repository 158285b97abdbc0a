"""Run the emulator on a real localhost socket, in-process, for tests and tools."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import uvicorn

from .app import EmulatorApp
from .config import EmulatorConfig
from .core import Emulator
from .faults import Faults
from .state import OutboundMessage
from .templates import Template
from .tokens import TokenRecord
from .users import SimulatedUser
from .webhooks import Attempt, DeliveryModes, verify_handshake


class EmulatorHandle:
    """What `run_emulator` yields: the address, the config, and the levers tests pull."""

    def __init__(self, emulator: Emulator, base_url: str) -> None:
        self.emulator = emulator
        self.base_url = base_url

    def __repr__(self) -> str:
        return f"EmulatorHandle(base_url={self.base_url!r})"

    @property
    def config(self) -> EmulatorConfig:
        return self.emulator.config

    @property
    def faults(self) -> Faults:
        return self.emulator.faults

    @property
    def graph_url(self) -> str:
        """Versioned base, like `https://graph.facebook.com/v23.0`."""
        return f"{self.base_url}/v23.0"

    # -- users and what they got -----------------------------------------------------------
    def user(self, wa_id: str, name: str | None = None) -> SimulatedUser:
        return SimulatedUser(self.emulator, self.emulator.state.user(wa_id, name))

    def sent(self) -> list[OutboundMessage]:
        """Every accepted send of this run, in acceptance order."""
        return list(self.emulator.state.send_log)

    def sends_by_callback_data(self) -> dict[str | None, int]:
        return self.emulator.state.sends_by_callback_data()

    def message(self, wamid: str) -> OutboundMessage:
        return self.emulator.state.outbound[wamid]

    # -- clock, limits, tokens -------------------------------------------------------------
    def advance_clock(self, *, seconds: float = 0, minutes: float = 0, hours: float = 0, days: float = 0) -> None:
        self.emulator.clock.advance(seconds + 60 * minutes + 3600 * hours + 86400 * days)

    def expire_token(self, token: str | None = None) -> None:
        self.emulator.tokens.expire(token or self.config.access_token)

    def rotate_token(self, *, expire_old: bool = True) -> str:
        """A new valid token (returned); by default every previous token expires."""
        return self.emulator.tokens.rotate(expire_old)

    def issue_token(self, type: str = "SYSTEM_USER", *, expires_in: float | None = None,
                    scopes: list[str] | None = None, targets: list[str] | None = None) -> str:
        """A new token of a kind (`SYSTEM_USER`: never expires unless `expires_in`; `USER`: 24 h unless
        `expires_in`), with `scopes` (default: every WhatsApp scope) on `targets` (default: the WABA)."""
        return self.emulator.tokens.issue(type, expires_in=expires_in, scopes=scopes, targets=targets).value

    def revoke_token(self, token: str) -> None:
        """The token is invalidated (190/460), as after a password change."""
        self.emulator.tokens.revoke(token)

    def token_record(self, token: str) -> TokenRecord | None:
        return self.emulator.tokens.get(token)

    # -- webhooks --------------------------------------------------------------------------
    def set_callback(self, url: str | None) -> None:
        self.config.callback_url = url

    def webhook_modes(self, **changes: Any) -> DeliveryModes:
        """duplicate_rate, reorder, batch_size, window_s, batch_entries, fail_next."""
        return self.emulator.webhooks.set_modes(**changes)

    @property
    def webhook_attempts(self) -> list[Attempt]:
        return self.emulator.webhooks.attempts

    async def webhooks_idle(self, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        """Wait until every queued webhook (and retry) has been attempted."""
        await self.emulator.webhooks.idle(timeout)

    async def verify_callback(self, callback_url: str | None = None) -> bool:
        """Meta's GET hub.challenge handshake against the receiver, with the configured verify token."""
        url = callback_url or self.config.callback_url
        if not url:
            raise ValueError("no callback_url")
        return await verify_handshake(url, self.config.verify_token)

    # -- templates -------------------------------------------------------------------------
    def add_template(self, name: str, body_text: str = "Hello", *, language: str = "en_US",
                     category: str = "UTILITY", status: str = "APPROVED", parameter_format: str = "positional",
                     components: list[dict[str, Any]] | None = None) -> Template:
        comps = components if components is not None else [{"type": "BODY", "text": body_text}]
        return self.emulator.templates.create(
            self.config.waba_id,
            {"name": name, "language": language, "category": category, "parameter_format": parameter_format,
             "components": comps},
            status=status,
        )

    def set_template_status(self, template_id: str, status: str, reason: str | None = None) -> Template:
        """Move a template (e.g. PENDING → APPROVED, → PAUSED) and emit its status webhook."""
        return self.emulator.set_template_status(template_id, status, reason)


class _InProcessServer(uvicorn.Server):
    """A server living inside someone else's program: the signals stay theirs."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    # uvicorn polls in 100 ms steps; tests start and stop servers constantly, so poll faster.
    async def main_loop(self) -> None:
        counter = 0
        should_exit = await self.on_tick(counter)
        while not should_exit:
            counter = (counter + 1) % 864000
            await asyncio.sleep(0.01)
            should_exit = await self.on_tick(counter)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()
        for connection in list(self.server_state.connections):
            connection.shutdown()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (self.config.timeout_graceful_shutdown or 1)
        while (self.server_state.connections or self.server_state.tasks) and loop.time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.005)
        for task in self.server_state.tasks:
            task.cancel()
        await self.lifespan.shutdown()


def _free_socket(host: str) -> socket.socket:
    # IPPROTO_TCP explicitly: asyncio only sets TCP_NODELAY on accepted sockets whose proto says TCP,
    # and without it every keep-alive answer waits ~40 ms for a delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    sock.listen(2048)
    sock.setblocking(False)
    return sock


@contextlib.asynccontextmanager
async def serve_asgi(app: Any, host: str = "127.0.0.1", **uvicorn_kw: Any) -> AsyncIterator[str]:
    """Serve any ASGI app with uvicorn on a free port in this event loop; yields its base URL."""
    sock = _free_socket(host)
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on",
                            timeout_graceful_shutdown=1, **uvicorn_kw)
    server = _InProcessServer(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("server exited during startup")
            await asyncio.sleep(0.002)
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await task
        sock.close()


@contextlib.asynccontextmanager
async def run_emulator(
    config: EmulatorConfig | None = None, *, host: str = "127.0.0.1"
) -> AsyncIterator[EmulatorHandle]:
    """Start the emulator on a free localhost port in this event loop; stop it on exit."""
    emulator = Emulator(config or EmulatorConfig())
    async with serve_asgi(EmulatorApp(emulator), host) as base_url:
        yield EmulatorHandle(emulator, base_url)
