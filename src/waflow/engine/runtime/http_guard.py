"""Outbound HTTP for `http` nodes, with an SSRF guard and a deadline for the whole call.

Refused: schemes other than http/https; hosts resolving to loopback, private, link-local, site-local
(`fec0::/10`), shared, reserved, multicast or unspecified addresses — also when such an IPv4 address is
embedded in an IPv6 one (IPv4-mapped `::ffff:a.b.c.d`, 6to4 `2002:aabb:ccdd::/16`, NAT64 `64:ff9b::/96`,
Teredo's client) — unless the host (or the address) is in the deployment's allow-list; the cloud metadata
addresses (169.254.169.254, fd00:ec2::254, and those embedded the same ways) always. A host name that is not
valid (IDNA: an empty label, a label over 63 characters, ...) or a port out of range is refused, not raised.
Redirects are not followed (a redirect could point inside). Every address a name resolves to is checked; the
request then goes to the name again, so a DNS answer that changes between the check and the connect
(rebinding) is not covered — put an egress proxy in front for that.

The node's `timeout` is a deadline for the whole call — a free call slot, the name's resolution, the connection,
the headers and the whole body — not a per-read timeout (a body trickling one byte a second would otherwise hold
the conversation, and a call slot, far longer). The URL's own query string is kept; `query` parameters are added
to it (a parameter named in both takes the node's value).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson

log = logging.getLogger(__name__)
IP = ipaddress.IPv4Address | ipaddress.IPv6Address
METADATA = frozenset({ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")})
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_SHARED = ipaddress.ip_network("100.64.0.0/10")


class Refused(Exception):
    """The guard refused the request."""


def embedded_ipv4(ip: IP) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries (mapped, 6to4, NAT64, Teredo's client and server)."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return []
    found = [v4 for v4 in (ip.ipv4_mapped, ip.sixtofour) if v4 is not None]
    if ip in _NAT64:
        found.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    if ip.teredo is not None:
        found.extend(ip.teredo)
    return found


def _private(ip: IP) -> bool:
    if any(_private(v4) for v4 in embedded_ipv4(ip)):
        return True
    return (
        ip.is_loopback
        or ip.is_private
        or ip.is_link_local
        or ip.is_reserved
        or ip.is_multicast
        or ip.is_unspecified
        or (isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local)
        or (isinstance(ip, ipaddress.IPv4Address) and ip in _SHARED)
    )


def _metadata(ip: IP) -> bool:
    return ip in METADATA or any(v4 in METADATA for v4 in embedded_ipv4(ip))


async def _addresses(host: str, port: int) -> list[IP]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        host.encode("idna")  # what getaddrinfo does first: raises UnicodeError for a bad label
    except UnicodeError as exc:
        raise Refused(f"{host[:80]!r} is not a valid host name ({exc})") from None
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise Refused(f"cannot resolve {host[:80]!r}: {exc}") from None
    return [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]


async def check_url(url: str, allow_hosts: frozenset[str]) -> None:
    """Raise `Refused` when `url` may not be called."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:  # a bad port, a bad IPv6 literal
        raise Refused(f"the URL is not valid: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise Refused(f"scheme {parts.scheme!r} is not allowed (http or https only)")
    host = (parts.hostname or "").lower()
    if not host:
        raise Refused("the URL has no host")
    addresses = await _addresses(host, port or (443 if parts.scheme == "https" else 80))
    for ip in addresses:
        if _metadata(ip):
            raise Refused(f"{host!r} is a cloud metadata address")
    if host in allow_hosts:
        return
    for ip in addresses:
        if _private(ip) and str(ip) not in allow_hosts:
            raise Refused(f"{host!r} resolves to a non-public address ({ip}); add it to http_allow_hosts to allow it")


def request_url(url: str, params: dict[str, Any] | None) -> httpx.URL:
    """The URL with the node's `query` parameters merged into its own query string."""
    merged = httpx.URL(url)
    return merged.copy_merge_params(params) if params else merged


async def call(
    client: httpx.AsyncClient,
    request: dict[str, Any],
    *,
    allow_hosts: frozenset[str],
    max_bytes: int,
    slots: asyncio.Semaphore | None = None,
) -> dict[str, Any]:
    """Make an http node's request; returns `{status, headers, text, json}` or `{error}` (never raises).

    The whole call — waiting for one of `slots`, the URL check (resolution included), connecting, sending,
    the headers and the body — has `request["timeout"]` seconds; past them the answer is `{"error": "timeout"}`.
    """
    timeout = float(request.get("timeout", 10))
    try:
        async with asyncio.timeout(timeout):
            async with slots if slots is not None else contextlib.nullcontext():
                return await _call(client, request, allow_hosts=allow_hosts, max_bytes=max_bytes, per_phase=timeout)
    except TimeoutError:
        return {"error": "timeout"}


async def _call(
    client: httpx.AsyncClient, request: dict[str, Any], *, allow_hosts: frozenset[str], max_bytes: int, per_phase: float
) -> dict[str, Any]:
    try:
        await check_url(request["url"], allow_hosts)
    except Refused as exc:
        return {"error": f"refused: {exc}"}
    try:
        url = request_url(request["url"], request.get("params"))
    except (httpx.InvalidURL, ValueError, TypeError, UnicodeError) as exc:
        return {"error": f"refused: the URL is not valid: {exc}"}
    kwargs: dict[str, Any] = {"headers": request.get("headers") or {}, "timeout": per_phase}
    if "content" in request:
        kwargs["content"] = request["content"]
    elif "json" in request:
        kwargs["json"] = request["json"]
    try:
        async with client.stream(request["method"], url, follow_redirects=False, **kwargs) as resp:
            body = bytearray()
            async for chunk in resp.aiter_bytes():
                body += chunk
                if len(body) > max_bytes:
                    return {"error": f"response larger than {max_bytes} bytes"}
    except httpx.TimeoutException:
        return {"error": "timeout"}
    except httpx.HTTPError as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
    except (httpx.InvalidURL, httpx.StreamError, ValueError, TypeError, UnicodeError) as exc:
        # a header value that cannot be sent, a URL httpx will not take: the node's error path, not a stuck session
        log.warning("http node request refused by the client: %s: %s", type(exc).__name__, exc)
        return {"error": f"refused: {type(exc).__name__}: {exc}"}
    text = body.decode(resp.encoding or "utf-8", errors="replace")
    parsed: Any = None
    if body:
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError:
            parsed = None
    return {"status": resp.status_code, "headers": dict(resp.headers), "text": text, "json": parsed}
