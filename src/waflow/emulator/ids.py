"""Id formats that look like Meta's: wamids, numeric object ids, business-scoped user ids."""

from __future__ import annotations

import base64
import hashlib
import itertools
import os

_counter = itertools.count(1)
_numeric = itertools.count(int.from_bytes(os.urandom(3), "big") * 1000 + 1_000_000_000_000_000)

# Enough country prefixes for plausible BSUIDs; anything else gets "ZZ".
_COUNTRIES = {
    "1": "US", "7": "RU", "20": "EG", "27": "ZA", "30": "GR", "31": "NL", "32": "BE", "33": "FR", "34": "ES",
    "39": "IT", "41": "CH", "44": "GB", "49": "DE", "52": "MX", "54": "AR", "55": "BR", "57": "CO", "61": "AU",
    "62": "ID", "81": "JP", "86": "CN", "90": "TR", "91": "IN", "234": "NG", "351": "PT", "972": "IL",
}


def wamid(wa_id: str) -> str:
    """A unique id shaped like Meta's: base64 of a length-prefixed number and a random tail."""
    digits = wa_id.encode()[:255]
    tail = os.urandom(8).hex().upper().encode() + b"%05X" % (next(_counter) & 0xFFFFF)
    raw = b"\x18" + bytes([len(digits)]) + digits + b"\x15\x02\x00\x11\x18" + bytes([len(tail)]) + tail + b"\x00"
    return "wamid." + base64.b64encode(raw).decode()


def numeric_id() -> str:
    """A Graph object id (media, template): 16 digits, unique per process."""
    return str(next(_numeric))


def country_of(wa_id: str) -> str:
    for n in (3, 2, 1):
        code = _COUNTRIES.get(wa_id[:n])
        if code:
            return code
    return "ZZ"


def user_id_for(wa_id: str) -> str:
    """Stable business-scoped user id (2026 BSUID), derived from the phone so runs are reproducible."""
    digest = int.from_bytes(hashlib.sha256(b"bsuid:" + wa_id.encode()).digest()[:8], "big")
    return f"{country_of(wa_id)}.{digest % 10**16:016d}"


def trace_id() -> str:
    return base64.b64encode(os.urandom(15)).decode().replace("+", "-").replace("/", "_")
