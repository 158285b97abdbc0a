"""Shared by the intake tests: signed webhook bodies, clients bound to a chosen 127.0.0.x source address, and
raw-socket requests (to send headers without their body, or half a request)."""

from __future__ import annotations

import asyncio
import itertools
import json
import ssl
from dataclasses import dataclass

import httpx

from waflow.emulator import EmulatorHandle
from waflow.webhooks.signature import sign

_ids = itertools.count(1)


def message_body(emu: EmulatorHandle, wamid: str | None = None) -> tuple[str, bytes]:
    """(wamid, body) of a one-message webhook for the emulator's number."""
    wamid = wamid or f"wamid.INTAKE{next(_ids):08d}"
    cfg = emu.config
    doc = {"object": "whatsapp_business_account", "entry": [{"id": cfg.waba_id, "changes": [{
        "field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881", "phone_number_id": cfg.phone_number_id},
            "contacts": [{"profile": {"name": "Ana"}, "wa_id": "34600111222"}],
            "messages": [{"from": "34600111222", "id": wamid, "timestamp": "1760000000", "type": "text",
                          "text": {"body": "hola"}}]}}]}]}
    return wamid, json.dumps(doc, separators=(",", ":")).encode()


def signed(emu: EmulatorHandle, body: bytes) -> dict[str, str]:
    return {"Content-Type": "application/json", "X-Hub-Signature-256": sign(body, emu.config.app_secret)}


def client(base_url: str, source: str = "127.0.0.1", *, verify: ssl.SSLContext | bool = True,
           headers: dict[str, str] | None = None) -> httpx.AsyncClient:
    """An httpx client whose connections leave from `source` (any 127.0.0.x reaches a loopback listener)."""
    transport = httpx.AsyncHTTPTransport(local_address=source, verify=verify)
    return httpx.AsyncClient(base_url=base_url, transport=transport, timeout=10, headers=headers)


@dataclass
class RawAnswer:
    status: int | None  # None: the connection closed without an HTTP answer
    head: str
    body: bytes

    def header(self, name: str) -> str | None:
        for line in self.head.split("\r\n")[1:]:
            key, _, value = line.partition(":")
            if key.strip().lower() == name.lower():
                return value.strip()
        return None


class Raw:
    """One TCP connection to `port` from `source`: write what you like, read the answer."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int, source: str = "127.0.0.1") -> Raw:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def answer(self, timeout: float = 10.0) -> RawAnswer:  # noqa: ASYNC109
        """The next HTTP answer (or the close without one), within `timeout` (TimeoutError otherwise)."""
        async with asyncio.timeout(timeout):
            try:
                head = await self.reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                return RawAnswer(None, "", b"")
            text = head.decode("latin-1")
            answer = RawAnswer(int(text.split(" ", 2)[1]), text, b"")
            length = answer.header("content-length")
            if length is not None:
                answer.body = await self.reader.readexactly(int(length))
            return answer

    async def closed(self, timeout: float = 10.0) -> bytes:  # noqa: ASYNC109
        """Everything the server sends until it closes the connection (TimeoutError if it does not)."""
        data = b""
        async with asyncio.timeout(timeout):
            while True:
                try:
                    chunk = await self.reader.read(65536)
                except ConnectionError:
                    return data
                if not chunk:
                    return data
                data += chunk

    def close(self) -> None:
        self.writer.close()


def request_head(method: str, path: str, headers: dict[str, str] | None = None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"] + [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
