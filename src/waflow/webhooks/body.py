"""Reading a request body under a size limit, without reading past it."""

from __future__ import annotations

from starlette.requests import Request


class BodyTooLargeError(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"request body exceeds {limit} bytes")
        self.limit = limit


async def read_limited(request: Request, limit: int) -> bytes:
    """The raw body; `BodyTooLargeError` as soon as it is known to exceed `limit` bytes.

    A `Content-Length` over the limit is refused before any byte is read; a chunked or lying
    body is refused at the first chunk that crosses the limit.
    """
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise BodyTooLargeError(limit)
        except ValueError:
            pass  # a malformed length: count the bytes instead
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLargeError(limit)
        if chunk:
            chunks.append(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)
