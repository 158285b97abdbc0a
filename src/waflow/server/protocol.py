"""uvicorn's httptools protocol with the connection-level bounds uvicorn does not have.

uvicorn bounds an idle kept-alive connection (`timeout_keep_alive`) and nothing else: a connection that sends
nothing, or half its headers, or headers without end, stays open and growing for ever (httptools has no header
size limit; `limit_concurrency` answers 503 to *everyone* once idle connections fill it). This subclass adds:

- **a header deadline** (`header_timeout_s`): from the accept, and from the first byte of each next request on a
  kept-alive connection, the request line and headers must be complete within it; else the connection is
  closed (with a 408 if part of a request came);
- **a header size limit** (`max_header_bytes`): request line + headers beyond it get a 431 and the connection
  is closed;
- **connection limits**: beyond `max_connections` open connections a new connection is closed at once; beyond
  `max_connections_per_address` from one client address (trusted proxies exempt) it is never read, and closed
  after `TARPIT_S` (a flood tool that reconnects at once would otherwise cost an accept per attempt);
- **the slow lane**: a new connection from an address that is over its failure budget (`Guard.penalized`) is
  not read until its turn in `Guard.lane` (at most `penalized_connections_per_s`, all such addresses
  together). Everything it sends is still read then, so a validly signed webhook from that address is
  stored and answered 200, only later; a flood from it costs an accept and a wait, not a parse.

The body deadline is the intake's (`waflow.server.intake`), per `receive()`.

**Lingering close.** An answer given before the request's body was read (a 401 before a 300 MB upload, a 413)
closes the connection — but closing a socket with unread bytes in it makes the kernel reset the connection,
and a client still uploading (httpx, curl: they read the answer only once their body is sent) would lose the
answer. So such a close sends the answer and a FIN (no more from us), then reads and throws away what the client
still sends — unparsed, without buffering — until it closes, for at most `body_timeout_s` and `LINGER_MAX_BYTES`.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar, cast

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from waflow.server.intake import Guard
from waflow.server.ratelimit import address_key

_REQUEST_TIMEOUT = (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
                    b"content-length: 15\r\nconnection: close\r\n\r\nRequest Timeout")
_TOO_LARGE = (b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: text/plain; charset=utf-8\r\n"
              b"content-length: 31\r\nconnection: close\r\n\r\nRequest Header Fields Too Large")


LINGER_MAX_BYTES = 32 * 1024 * 1024
# A connection over its address's limit is held this long, unread, before it is closed (at most
# `max_connections` such at once; beyond, they are closed at once).
TARPIT_S = 2.0


class _LingeringTransport:
    """The transport as uvicorn's request cycles see it: `close()` lingers while the request body is still
    coming (see the module doc); everything else is the real transport's."""

    __slots__ = ("_protocol", "_real")

    def __init__(self, real: asyncio.Transport, protocol: GuardedHttpToolsProtocol) -> None:
        self._real = real
        self._protocol = protocol

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def close(self) -> None:
        self._protocol._close_or_linger()

    def is_closing(self) -> bool:
        return self._protocol._lingering or self._real.is_closing()


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    guard: ClassVar[Guard]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None
        self._waiting_headers = True
        self._header_bytes = 0
        self._begun = False
        self._completed_in_feed = False
        self._counted: str | None = None
        self._held: list[bytes] | None = None  # in the slow lane: what arrived before its turn
        self._real: asyncio.Transport | None = None
        self._lingering = False
        self._linger_timer: asyncio.TimerHandle | None = None
        self._discarded = 0
        self._tarpit = False

    # -- connections ------------------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._real = transport
        self.transport = cast(asyncio.Transport, _LingeringTransport(transport, self))
        guard = self.guard
        limits = guard.limits
        peer = self.client[0] if self.client else None
        if len(self.connections) - guard.tarpitted > limits.max_connections:
            guard.refused("connections", peer or "")
            transport.close()
            return
        trusted = peer is not None and guard.trusted.trusts(peer)
        if peer is not None and not trusted:
            key = address_key(peer)
            count = guard.connections_by_address.get(key, 0) + 1
            guard.connections_by_address[key] = count
            self._counted = key
            if count > limits.max_connections_per_address:
                guard.refused("connections_per_address", peer)
                if guard.tarpitted < limits.max_connections:
                    # held unread, then closed: a client that reconnects at once would cost an accept each time
                    self._tarpit = True
                    guard.tarpitted += 1
                    self.flow.pause_reading()
                    self.loop.call_later(TARPIT_S, transport.close)
                else:
                    transport.close()
                return
        self._arm_header_timer()
        if peer is not None and not trusted and guard.failures.empty(address_key(peer)):
            # Held until its turn. uvloop starts reading right after `connection_made` returns, whatever was paused
            # in it, so what arrives before the pause takes hold is kept aside unparsed (`data_received`).
            self._held = []
            self.flow.pause_reading()
            guard.lane.admit(self._lane_go, self._alive)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        if self._tarpit:
            self._tarpit = False
            self.guard.tarpitted -= 1
        if self._linger_timer is not None:
            self._linger_timer.cancel()
            self._linger_timer = None
        self._lingering = False
        key, self._counted = self._counted, None
        if key is not None:
            by_address = self.guard.connections_by_address
            left = by_address.get(key, 1) - 1
            if left > 0:
                by_address[key] = left
            else:
                by_address.pop(key, None)
        super().connection_lost(exc)

    def _close_or_linger(self) -> None:
        real = self._real
        assert real is not None
        if self._lingering or real.is_closing():
            return  # a lingering connection closes by itself
        cycle = self.cycle
        if cycle is None or not cycle.more_body or cycle.disconnected:
            real.close()
            return
        self._linger()  # answered while its body is still coming

    def _linger(self) -> None:
        """Answer sent: FIN, then read and drop what the client still sends, for a while (see the module doc)."""
        real = self._real
        assert real is not None
        if self._lingering or real.is_closing():
            return
        self._lingering = True
        self._cancel_header_timer()
        if real.can_write_eof():
            real.write_eof()
        self.flow.resume_reading()
        self._linger_timer = self.loop.call_later(self.guard.limits.body_timeout_s, real.close)

    def _alive(self) -> bool:
        return not self.transport.is_closing()

    def _lane_go(self) -> None:
        held, self._held = self._held, None
        if self.transport.is_closing():
            return
        self.flow.resume_reading()
        if held:
            self.data_received(b"".join(held))

    # -- headers: deadline and size ---------------------------------------------------------------------------

    def _arm_header_timer(self) -> None:
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(self.guard.limits.header_timeout_s, self._headers_late)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_late(self) -> None:
        self._header_timer = None
        if not self._waiting_headers or self.transport.is_closing():
            return
        self.guard.refused("header_timeout", self.client[0] if self.client else "")
        if self._begun:
            self.transport.write(_REQUEST_TIMEOUT)
        self.transport.close()

    def data_received(self, data: bytes) -> None:
        if self._tarpit:  # over its address's connection limit: never read
            self.transport.pause_reading()
            return
        if self._lingering:  # answered and closing: the rest of the body is dropped unparsed
            self._discarded += len(data)
            if self._discarded > LINGER_MAX_BYTES and self._real is not None:
                self._real.close()
            return
        if self._held is not None:  # in the slow lane: not parsed before its turn
            self._held.append(data)
            self.transport.pause_reading()
            return
        self._completed_in_feed = False
        super().data_received(data)
        if self._waiting_headers and not self._completed_in_feed and not self.transport.is_closing():
            self._header_bytes += len(data)
            if self._header_bytes > self.guard.limits.max_header_bytes:
                self.guard.refused("header_too_large", self.client[0] if self.client else "")
                self.transport.write(_TOO_LARGE)
                self._linger()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._waiting_headers = True
        self._begun = True
        self._header_bytes = 0
        self._arm_header_timer()

    def on_headers_complete(self) -> None:
        self._waiting_headers = False
        self._cancel_header_timer()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._completed_in_feed = True
        super().on_message_complete()


def protocol_class(guard: Guard) -> type[GuardedHttpToolsProtocol]:
    """The protocol class to give uvicorn (`http=`), bound to `guard`."""
    return type("GuardedHttpToolsProtocol", (GuardedHttpToolsProtocol,), {"guard": guard})
