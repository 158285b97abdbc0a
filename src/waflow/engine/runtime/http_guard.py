"""Outbound HTTP for `http` nodes, with an SSRF guard.

Refused: schemes other than http/https; hosts resolving to loopback, private, link-local, shared,
reserved, multicast or unspecified addresses — unless the host (or the address) is in the
deployment's allow-list; the cloud metadata addresses (169.254.169.254, fd00:ec2::254) always.
Redirects are not followed (a redirect could point inside). Every address a name resolves to is
checked; the request then goes to the name again, so a DNS answer that changes between the check
and the connect (rebinding) is not covered — put an egress proxy in front for that.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson

METADATA = frozenset({ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")})


class Refused(Exception):
    """The guard refused the request."""


def _private(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return _private(ip.ipv4_mapped)
    return (
        ip.is_loopback
        or ip.is_private
        or ip.is_link_local
        or ip.is_reserved
        or ip.is_multicast
        or ip.is_unspecified
        or (isinstance(ip, ipaddress.IPv4Address) and ip in ipaddress.ip_network("100.64.0.0/10"))
    )


async def _addresses(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise Refused(f"cannot resolve {host!r}: {exc}") from None
    return [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]


async def check_url(url: str, allow_hosts: frozenset[str]) -> None:
    """Raise `Refused` when `url` may not be called."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise Refused(f"scheme {parts.scheme!r} is not allowed (http or https only)")
    host = (parts.hostname or "").lower()
    if not host:
        raise Refused("the URL has no host")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    addresses = await _addresses(host, port)
    for ip in addresses:
        if ip in METADATA or (isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped in METADATA):
            raise Refused(f"{host!r} is a cloud metadata address")
    if host in allow_hosts:
        return
    for ip in addresses:
        if _private(ip) and str(ip) not in allow_hosts:
            raise Refused(f"{host!r} resolves to a non-public address ({ip}); add it to http_allow_hosts to allow it")


async def call(
    client: httpx.AsyncClient, request: dict[str, Any], *, allow_hosts: frozenset[str], max_bytes: int
) -> dict[str, Any]:
    """Make an http node's request; returns `{status, headers, text, json}` or `{error}` (never raises)."""
    try:
        await check_url(request["url"], allow_hosts)
    except Refused as exc:
        return {"error": f"refused: {exc}"}
    kwargs: dict[str, Any] = {
        "headers": request.get("headers") or {},
        "params": request.get("params") or {},
        "timeout": float(request.get("timeout", 10)),
    }
    if "content" in request:
        kwargs["content"] = request["content"]
    elif "json" in request:
        kwargs["json"] = request["json"]
    try:
        async with client.stream(request["method"], request["url"], follow_redirects=False, **kwargs) as resp:
            body = bytearray()
            async for chunk in resp.aiter_bytes():
                body += chunk
                if len(body) > max_bytes:
                    return {"error": f"response larger than {max_bytes} bytes"}
    except httpx.TimeoutException:
        return {"error": "timeout"}
    except httpx.HTTPError as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
    text = body.decode(resp.encoding or "utf-8", errors="replace")
    parsed: Any = None
    if body:
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError:
            parsed = None
    return {"status": resp.status_code, "headers": dict(resp.headers), "text": text, "json": parsed}
