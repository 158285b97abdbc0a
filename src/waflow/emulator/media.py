"""Uploaded media: MIME and size checks (reference §3), ids, expiring download URLs."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from .graph_errors import GraphError
from .ids import numeric_id

MB = 1024 * 1024
LIMITS: dict[str, int] = {
    "audio/aac": 16 * MB, "audio/amr": 16 * MB, "audio/mpeg": 16 * MB, "audio/mp4": 16 * MB,
    "audio/ogg": 16 * MB, "audio/opus": 16 * MB,
    "text/plain": 100 * MB, "application/pdf": 100 * MB, "application/vnd.ms-excel": 100 * MB,
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": 100 * MB,
    "application/msword": 100 * MB,
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": 100 * MB,
    "application/vnd.ms-powerpoint": 100 * MB,
    "application/vnd.openxmlformats-officedocument.presentationml.presentation": 100 * MB,
    "image/jpeg": 5 * MB, "image/png": 5 * MB,
    "image/webp": 500 * 1024,  # stickers: 100 KB static / 500 KB animated; the upload cannot tell which
    "video/mp4": 16 * MB, "video/3gpp": 16 * MB,
}
KIND_OF = {
    "image/jpeg": "image", "image/png": "image", "image/webp": "sticker", "video/mp4": "video",
    "video/3gpp": "video",
}
EXTENSIONS = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp", "video/mp4": "mp4",
              "audio/ogg": "ogg", "audio/mpeg": "mp3", "application/pdf": "pdf", "text/plain": "txt"}


def kind_of(mime: str) -> str:
    if mime in KIND_OF:
        return KIND_OF[mime]
    return "audio" if mime.startswith("audio/") else "document"


@dataclass(slots=True)
class Media:
    id: str
    phone_number_id: str
    mime_type: str
    data: bytes
    sha256: str
    uploaded_at: float

    @property
    def file_size(self) -> int:
        return len(self.data)


class MediaStore:
    def __init__(self) -> None:
        self._by_id: dict[str, Media] = {}
        self._by_url_token: dict[str, tuple[Media, float]] = {}

    def upload(self, phone_number_id: str, mime: str, declared_type: str | None, data: bytes, now: float) -> Media:
        """`mime` is the file part's own Content-Type; parameters (`; codecs=opus`) are refused like Meta."""
        if ";" in mime or mime not in LIMITS:
            accepted = ", ".join(sorted(LIMITS))
            raise GraphError(
                100,
                None,
                message=f"(#100) Param file must be a file with one of the following types: {accepted}. "
                f"Received file of type '{mime[:80]}'.",
            )
        if declared_type is not None and declared_type.split(";")[0].strip() != mime:
            raise GraphError(100, None, message="(#100) Param type must match the type of the uploaded file.")
        if not data:
            raise GraphError(100, None, message="(#100) Param file is empty.")
        if len(data) > LIMITS[mime]:
            raise GraphError(
                131053,
                f"Media file size too big. Max file size for {mime} is {LIMITS[mime]} bytes, got {len(data)}.",
            )
        m = Media(numeric_id(), phone_number_id, mime, data, hashlib.sha256(data).hexdigest(), now)
        self._by_id[m.id] = m
        return m

    def add_inbound(self, mime: str, data: bytes, now: float) -> Media:
        """Media a simulated user sends: downloadable by the business like any other."""
        m = Media(numeric_id(), "", mime, data, hashlib.sha256(data).hexdigest(), now)
        self._by_id[m.id] = m
        return m

    def get(self, media_id: str) -> Media | None:
        return self._by_id.get(media_id)

    def delete(self, media_id: str) -> bool:
        m = self._by_id.pop(media_id, None)
        if m is None:
            return False
        for token in [t for t, (x, _) in self._by_url_token.items() if x is m]:
            del self._by_url_token[token]
        return True

    def issue_url(self, m: Media, now: float, ttl_s: float) -> str:
        """A fresh lookaside token each time, like Meta; previous ones stay valid until they expire."""
        token = secrets.token_urlsafe(16)
        self._by_url_token[token] = (m, now + ttl_s)
        return token

    def by_url_token(self, token: str, now: float) -> Media | None:
        found = self._by_url_token.get(token)
        if found is None or found[0].id not in self._by_id or now > found[1]:
            return None
        return found[0]
