"""Media: upload (multipart), URL lookup, authenticated bounded download, delete (reference §3)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Final

from waflow.cloudapi.errors import SCOPE_MESSAGING
from waflow.cloudapi.exceptions import MessageValidationError
from waflow.cloudapi.models import ResponseModel, SuccessResult
from waflow.cloudapi.transport import GraphTransport, MediaTooLargeError

MB: Final = 1024 * 1024

# MIME type -> max upload size (doc, reference §3). The upload endpoint also takes image/webp
# (stickers) and audio/opus per its own error text.
MEDIA_LIMITS: Final[dict[str, int]] = {
    "audio/aac": 16 * MB,
    "audio/amr": 16 * MB,
    "audio/mpeg": 16 * MB,
    "audio/mp4": 16 * MB,
    "audio/ogg": 16 * MB,
    "audio/opus": 16 * MB,
    "text/plain": 100 * MB,
    "application/pdf": 100 * MB,
    "application/vnd.ms-excel": 100 * MB,
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": 100 * MB,
    "application/msword": 100 * MB,
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": 100 * MB,
    "application/vnd.ms-powerpoint": 100 * MB,
    "application/vnd.openxmlformats-officedocument.presentationml.presentation": 100 * MB,
    "image/jpeg": 5 * MB,
    "image/png": 5 * MB,
    "image/webp": 500 * 1024,
    "video/mp4": 16 * MB,
    "video/3gpp": 16 * MB,
}
DEFAULT_MAX_DOWNLOAD: Final = 100 * MB


class UploadResult(ResponseModel):
    id: str


class MediaInfo(ResponseModel):
    """`GET /{media-id}`: a short-lived (5 min) download URL and the file's facts."""

    id: str
    url: str
    mime_type: str | None = None
    sha256: str | None = None
    file_size: int | None = None
    messaging_product: str = "whatsapp"


class Media:
    """Downloaded media bytes and their content type."""

    __slots__ = ("content", "mime_type")

    def __init__(self, content: bytes, mime_type: str | None) -> None:
        self.content = content
        self.mime_type = mime_type

    def __repr__(self) -> str:
        return f"Media(mime_type={self.mime_type!r}, size={len(self.content)})"


def normalise_mime(mime_type: str) -> str:
    """Graph rejects parameterised types (`audio/ogg; codecs=opus`): keep the bare type."""
    return mime_type.split(";", 1)[0].strip().lower()


class MediaAPI:
    def __init__(self, transport: GraphTransport, phone_number_id: str, *, max_download_bytes: int) -> None:
        self._t = transport
        self._phone_number_id = phone_number_id
        self.max_download_bytes = max_download_bytes

    async def upload(
        self, data: bytes | Path, mime_type: str, *, filename: str | None = None, check_limits: bool = True
    ) -> str:
        """Upload a file; return its media id (valid 30 days)."""
        mime = normalise_mime(mime_type)
        if isinstance(data, Path):
            filename = filename or data.name
            data = await asyncio.to_thread(data.read_bytes)
        if check_limits:
            limit = MEDIA_LIMITS.get(mime)
            if limit is None:
                raise MessageValidationError("type", f"{mime!r} is not a media type WhatsApp accepts")
            if len(data) > limit:
                raise MessageValidationError("file", f"{len(data)} bytes, at most {limit} for {mime}")
        files = {"file": (filename or "file", data, mime)}
        form = {"messaging_product": "whatsapp", "type": mime}
        body = await self._t.request_json(
            "POST", f"{self._phone_number_id}/media", files=files, data=form, scope=SCOPE_MESSAGING
        )
        return UploadResult.model_validate(body).id

    async def get_url(self, media_id: str) -> MediaInfo:
        body = await self._t.request_json(
            "GET", media_id, params={"phone_number_id": self._phone_number_id}, scope=SCOPE_MESSAGING
        )
        return MediaInfo.model_validate(body)

    async def download_url(self, url: str, *, max_bytes: int | None = None) -> Media:
        """Fetch a media URL (needs the Bearer token); refuse more than `max_bytes`."""
        content, mime = await self._t.download(url, max_bytes=max_bytes or self.max_download_bytes)
        return Media(content, mime)

    async def download(self, media_id: str, *, max_bytes: int | None = None) -> Media:
        """Look up the URL of `media_id` and download it."""
        info = await self.get_url(media_id)
        limit = max_bytes or self.max_download_bytes
        if info.file_size is not None and info.file_size > limit:
            raise MediaTooLargeError(info.file_size, limit)
        media = await self.download_url(info.url, max_bytes=limit)
        if media.mime_type is None:
            media.mime_type = info.mime_type
        return media

    async def delete(self, media_id: str) -> bool:
        body = await self._t.request_json(
            "DELETE", media_id, params={"phone_number_id": self._phone_number_id}, scope=SCOPE_MESSAGING
        )
        return SuccessResult.model_validate(body).success
