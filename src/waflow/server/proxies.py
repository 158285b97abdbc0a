"""Who sent a request, and over what: `X-Forwarded-For` / `X-Forwarded-Proto` believed from trusted proxies only.

`[server] trusted_proxies` lists the reverse proxies (IPs or CIDRs) in front of `waflow serve`. A request whose
TCP peer is one of them is taken to come from the address its `X-Forwarded-For` names — read from the right,
skipping the trusted proxies of a chain, the first address that is not one of them — and over the scheme its
`X-Forwarded-Proto` names (the last value: the one the nearest proxy set). A request from any other peer is
taken at its TCP address and its own transport (TLS or not); its `X-Forwarded-*` headers are ignored, so a client
cannot choose the address it is rate limited under or claim HTTPS.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable, Sequence

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class TrustedProxies:
    def __init__(self, networks: Iterable[str]) -> None:
        self.networks: tuple[_Network, ...] = tuple(ipaddress.ip_network(n, strict=False) for n in networks)
        self.trusts = functools.lru_cache(maxsize=4096)(self._trusts)

    def __bool__(self) -> bool:
        return bool(self.networks)

    def __repr__(self) -> str:
        return f"TrustedProxies({[str(n) for n in self.networks]})"

    def _trusts(self, address: str) -> bool:
        ip = _parse_ip(address)
        if ip is None:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip.version == n.version and ip in n for n in self.networks)

    def resolve(self, peer: str, scheme: str, forwarded_for: Sequence[bytes], forwarded_proto: Sequence[bytes]
                ) -> tuple[str, str]:
        """(client address, scheme) of a request from `peer` (its TCP address) over `scheme` (`http`/`https`)
        carrying these `X-Forwarded-For` / `X-Forwarded-Proto` header values (every occurrence, in order)."""
        if not self.networks or not self.trusts(peer):
            return peer, scheme
        client = peer
        hops = [h.strip() for value in forwarded_for for h in value.decode("latin-1").split(",")]
        for hop in reversed(hops):
            address = _hop_address(hop)
            if address is None:
                break  # garbage: the nearest trusted proxy did not write this; stay with the last good hop
            client = address
            if not self.trusts(address):
                break
        if forwarded_proto:
            proto = forwarded_proto[-1].decode("latin-1").rsplit(",", 1)[-1].strip().lower()
            if proto in ("http", "https"):
                scheme = proto
        return client, scheme


def _parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _hop_address(hop: str) -> str | None:
    """The address of one `X-Forwarded-For` entry: `1.2.3.4`, `1.2.3.4:5678`, `::1`, `[::1]:80` → canonical text."""
    if hop.startswith("["):
        hop = hop[1:].split("]", 1)[0]
    elif hop.count(":") == 1:
        hop = hop.split(":", 1)[0]
    ip = _parse_ip(hop)
    return None if ip is None else str(ip)
