"""A small multipart/form-data reader for media uploads (no third-party parser needed)."""

from __future__ import annotations

import re
from dataclasses import dataclass

_BOUNDARY = re.compile(r'boundary="?([^";,]+)"?', re.IGNORECASE)
_PARAM = re.compile(r';\s*([\w*-]+)="?((?:[^"\\]|\\.)*?)"?(?=;|$)')


@dataclass(frozen=True, slots=True)
class Part:
    name: str
    filename: str | None
    content_type: str | None  # as sent, parameters included (Meta refuses `audio/ogg; codecs=opus`)
    data: bytes

    @property
    def text(self) -> str:
        return self.data.decode("utf-8", "replace")


def parse(content_type: str, body: bytes) -> dict[str, Part]:
    """Fields by name; raises ValueError on anything that is not well-formed multipart."""
    m = _BOUNDARY.search(content_type)
    if not content_type.lower().startswith("multipart/form-data") or m is None:
        raise ValueError("not multipart/form-data")
    delimiter = b"\r\n--" + m.group(1).encode("latin-1")
    chunks = (b"\r\n" + body).split(delimiter)
    if len(chunks) < 3:
        raise ValueError("no parts")
    fields: dict[str, Part] = {}
    for chunk in chunks[1:]:
        if chunk.startswith(b"--"):
            return fields
        head, sep, data = chunk.partition(b"\r\n\r\n")
        if not sep:
            raise ValueError("part without headers")
        headers: dict[str, str] = {}
        for line in head.decode("latin-1").split("\r\n"):
            if ":" in line:
                key, _, value = line.partition(":")
                headers[key.strip().lower()] = value.strip()
        params = dict(_PARAM.findall(headers.get("content-disposition", "")))
        if "name" not in params:
            raise ValueError("part without a name")
        fields[params["name"]] = Part(params["name"], params.get("filename"), headers.get("content-type"), data)
    raise ValueError("unterminated multipart body")
