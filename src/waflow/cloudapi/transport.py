"""HTTP core shared by the message, media and template APIs.

One pooled `httpx.AsyncClient`; the access token cached and refreshed once on 401 / code 190;
Graph error envelopes turned into typed exceptions; transport failures turned into
`NetworkError` / `SendTimeout` with an explicit "may have been accepted" flag.

The token only ever lives in the Authorization header: it is never put in a URL, a log line,
a repr or an exception text (Graph sometimes echoes a malformed token; it is redacted).
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib.util
import logging
import socket
import ssl
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import certifi
import httpx
import orjson

from waflow.cloudapi.errors import ErrorClass
from waflow.cloudapi.exceptions import (
    CloudClientError,
    ConnectTimeout,
    ErrorInfo,
    MessageValidationError,
    NetworkError,
    SendTimeout,
    TokenError,
    UnexpectedResponseError,
    error_info,
    exception_for,
    parse_error_envelope,
)
from waflow.cloudapi.tokens import TokenProvider, TokenUnavailableError

logger = logging.getLogger("waflow.cloudapi")


def _block_missing_sniffio() -> None:
    """httpcore 1.0.x runs `import sniffio` on every pool-lock setup; anyio >= 4.x no longer installs
    sniffio, so each request paid a failed import (a full sys.path scan: ~30 % of the client's CPU,
    measured). A `None` entry in sys.modules makes that failed import instant. No-op when sniffio
    is installed (the real fix: depend on it)."""
    if "sniffio" not in sys.modules and importlib.util.find_spec("sniffio") is None:
        sys.modules["sniffio"] = None  # type: ignore[assignment]


_block_missing_sniffio()

DEFAULT_BASE_URL = "https://graph.facebook.com"
DEFAULT_API_VERSION = "v23.0"
_REDACTED = "***"
_SOCKET_OPTIONS = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
_CONNECTIONS_PER_LANE = 4
_USER_AGENT = "waflow"


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds. `total` bounds a whole request (connect + send + wait + read), `None` = unbounded."""

    connect: float = 5.0
    read: float = 30.0
    write: float = 30.0
    pool: float = 10.0
    total: float | None = 60.0

    def httpx(self) -> httpx.Timeout:
        return httpx.Timeout(connect=self.connect, read=self.read, write=self.write, pool=self.pool)


class MediaTooLargeError(CloudClientError):
    """A download exceeded the configured bound; it was abandoned."""

    def __init__(self, size: int | None, limit: int) -> None:
        self.size = size
        self.limit = limit
        shown = f"{size} bytes" if size is not None else "more bytes"
        super().__init__(f"media is {shown}, at most {limit} bytes may be downloaded")


class GraphTransport:
    """Authenticated JSON requests against `{base_url}/{api_version}/...`."""

    def __init__(
        self,
        token_provider: TokenProvider,
        *,
        base_url: str = DEFAULT_BASE_URL,
        api_version: str = DEFAULT_API_VERSION,
        timeouts: Timeouts | None = None,
        max_connections: int = 100,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        self._provider = token_provider
        self.base_url = base_url.rstrip("/")
        self.api_version = api_version.strip("/")
        self.root = f"{self.base_url}/{self.api_version}" if self.api_version else self.base_url
        self.timeouts = timeouts or Timeouts()
        self._owns_http = http_client is None
        self._lane_transports: list[httpx.AsyncHTTPTransport] = []  # with our own pools only (see `_direct`)
        if http_client is not None:
            self._lanes = [http_client]
        else:
            # Several small pools instead of one big one: httpcore assigns queued requests to
            # connections with a scan over both (quadratic in the pool size), which capped one
            # 64-connection pool at ~250 req/s on this hardware; 16 pools of 4 sustain >1,000.
            lanes = max(1, -(-max_connections // _CONNECTIONS_PER_LANE))
            per_lane = -(-max_connections // lanes)
            # One TLS context for all pools: building one loads the CA bundle (~20 ms each).
            ssl_context = ssl.create_default_context(cafile=certifi.where())
            self._lanes = [self._new_http(per_lane, ssl_context) for _ in range(lanes)]
        self._request_extensions = {"timeout": self.timeouts.httpx().as_dict()}
        self._in_flight = [0] * len(self._lanes)
        self._http = self._lanes[0]  # media downloads and other one-off calls
        self._token: str | None = None
        self._json_headers: dict[str, str] = {}
        self._auth_headers: dict[str, str] = {}
        self._token_lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"GraphTransport(root={self.root!r}, token_provider={self._provider!r})"

    def _new_http(self, connections: int, ssl_context: ssl.SSLContext) -> httpx.AsyncClient:
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        # Small JSON requests must not wait on Nagle's algorithm (measured: halves loopback latency).
        transport = httpx.AsyncHTTPTransport(verify=ssl_context, limits=limits, socket_options=_SOCKET_OPTIONS)
        self._lane_transports.append(transport)
        return httpx.AsyncClient(
            timeout=self.timeouts.httpx(),
            limits=limits,
            transport=transport,
            # Redirects only matter for media downloads, which opt in per request.
            follow_redirects=False,
        )

    def _pick_lane(self) -> int:
        """The least busy pool; ties go to the first, so a quiet client keeps using one connection."""
        in_flight = self._in_flight
        best = 0
        for i in range(1, len(in_flight)):
            if in_flight[i] < in_flight[best]:
                best = i
        return best

    async def aclose(self) -> None:
        if self._owns_http:
            for lane in self._lanes:
                await lane.aclose()

    def url(self, path: str) -> str:
        return f"{self.root}/{path.lstrip('/')}"

    # -- token --------------------------------------------------------------------------------

    def _set_token(self, token: str) -> None:
        self._token = token
        self._auth_headers = {"Authorization": f"Bearer {token}"}
        self._json_headers = {
            "Authorization": f"Bearer {token}", "Content-Type": "application/json", "User-Agent": _USER_AGENT
        }

    async def _current_token(self) -> str:
        token = self._token
        if token is not None:
            return token
        async with self._token_lock:
            if self._token is None:
                self._set_token(await self._fetch_token(refresh=False))
            assert self._token is not None
            return self._token

    async def _refreshed_token(self, rejected: str) -> str | None:
        """A token other than `rejected`, asking the provider at most once per rejection.

        Concurrent requests that all saw the same token rejected share one provider call.
        None: the provider has nothing newer, so replaying would fail the same way.
        """
        async with self._token_lock:
            if self._token is not None and self._token != rejected:
                return self._token
            fresh = await self._fetch_token(refresh=True)
            self._set_token(fresh)
            return fresh if fresh != rejected else None

    async def _fetch_token(self, *, refresh: bool) -> str:
        try:
            return await self._provider.get_token(refresh=refresh)
        except TokenUnavailableError as exc:
            info = error_info(None, message=f"no access token: {exc}")
            info = dataclasses.replace(info, error_class=ErrorClass.TOKEN)
            raise TokenError(info) from None

    async def invalidate_token(self) -> None:
        """Forget the cached token; the next request asks the provider again."""
        async with self._token_lock:
            self._token = None

    # -- requests -----------------------------------------------------------------------------

    async def request_json(
        self,
        method: str,
        path_or_url: str,
        *,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        files: Any = None,
        data: Mapping[str, Any] | None = None,
        scope: str | None = None,
    ) -> Any:
        """Send an authenticated request and return the decoded JSON answer, or raise.

        `scope`: the permission the call needs (`whatsapp_business_messaging`, ...), named in the error when
        Graph refuses it with code 10 (permission denied)."""
        url = path_or_url if path_or_url.startswith(("http://", "https://")) else self.url(path_or_url)
        content = _encode_body(body) if body is not None else None
        token = await self._current_token()
        response = await self._send(method, url, token, content=content, params=params, files=files, data=data)
        if self._token_rejected(response):
            fresh = await self._refreshed_token(token)
            if fresh is not None:
                token = fresh
                response = await self._send(method, url, fresh, content=content, params=params, files=files, data=data)
        return self._decode(response, token, may_have_effect=method != "GET", scope=scope)

    async def _send(
        self,
        method: str,
        url: str,
        token: str,
        *,
        content: bytes | None,
        params: Mapping[str, Any] | None,
        files: Any,
        data: Mapping[str, Any] | None,
    ) -> httpx.Response:
        headers = self._json_headers if content is not None else self._auth_headers
        if token != self._token:
            headers = {"Authorization": f"Bearer {token}"}
            if content is not None:
                headers["Content-Type"] = "application/json"
        started = time.perf_counter()
        lane = self._pick_lane()
        self._in_flight[lane] += 1
        try:
            if self._lane_transports and params is None and files is None and data is None:
                request = self._direct(lane, method, url, content, headers)
            else:
                request = self._lanes[lane].request(
                    method, url, content=content, params=params, files=files, data=data, headers=headers
                )
            if self.timeouts.total is not None:
                async with asyncio.timeout(self.timeouts.total):
                    response = await request
            else:
                response = await request
        except (httpx.TransportError, TimeoutError) as exc:
            raise transport_error(exc, method, url) from None
        finally:
            self._in_flight[lane] -= 1
        if logger.isEnabledFor(logging.DEBUG):
            # Method, path and status only: headers (the token) are never logged.
            logger.debug(
                "%s %s -> %d in %.1f ms", method, _path_of(url), response.status_code,
                (time.perf_counter() - started) * 1000,
            )
        return response

    async def _direct(
        self, lane: int, method: str, url: str, content: bytes | None, headers: Mapping[str, str]
    ) -> httpx.Response:
        """A request straight to the lane's transport (httpx's documented transport API), read in full.

        The client layer around it (URL merging, default headers, cookies, auth and redirect flows, event
        hooks) cost ~15% of the dispatcher's CPU per message at 1,000 msg/s, for nothing a Graph call
        without query parameters or files uses."""
        request = httpx.Request(method, url, headers=headers, content=content, extensions=self._request_extensions)
        response = await self._lane_transports[lane].handle_async_request(request)
        try:
            await response.aread()
        finally:
            await response.aclose()
        return response

    @staticmethod
    def _token_rejected(response: httpx.Response) -> bool:
        if response.status_code == 401:
            return True
        if response.status_code < 400:
            return False
        info = _error_of(response)
        return info.error_class is ErrorClass.TOKEN

    def _decode(self, response: httpx.Response, token: str, *, may_have_effect: bool, scope: str | None = None) -> Any:
        status = response.status_code
        if status < 300:
            try:
                decoded = orjson.loads(response.content) if response.content else {}
            except orjson.JSONDecodeError:
                exc = UnexpectedResponseError(
                    error_info(None, http_status=status, message=f"HTTP {status} with a body that is not JSON")
                )
                # A 2xx means Graph took the request; without the body we cannot tell what it did.
                exc.outcome_unknown = may_have_effect
                raise exc from None
            if not (isinstance(decoded, Mapping) and "error" in decoded):
                return decoded
        info = _redact(_error_of(response, scope), token)
        error = exception_for(info)
        if info.code is None and status in (502, 504) and may_have_effect:
            # A gateway gave up waiting on Graph, which may still have processed the request.
            error.outcome_unknown = True
        raise error

    async def download(self, url: str, *, max_bytes: int) -> tuple[bytes, str | None]:
        """GET a media URL with the Bearer token; bounded size; (body, content type)."""
        token = await self._current_token()
        for attempt in (0, 1):
            headers = {"Authorization": f"Bearer {token}"}
            try:
                async with asyncio.timeout(self.timeouts.total), self._http.stream(
                    "GET", url, headers=headers, follow_redirects=True
                ) as response:
                    if response.status_code == 401 and attempt == 0:
                        fresh = await self._refreshed_token(token)
                        if fresh is not None:
                            token = fresh
                            continue
                    if response.status_code >= 300:
                        await response.aread()
                        self._decode(response, token, may_have_effect=False)
                    declared = response.headers.get("content-length")
                    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
                        raise MediaTooLargeError(int(declared), max_bytes)
                    chunks: list[bytes] = []
                    size = 0
                    async for chunk in response.aiter_bytes():
                        size += len(chunk)
                        if size > max_bytes:
                            raise MediaTooLargeError(None, max_bytes)
                        chunks.append(chunk)
                    return b"".join(chunks), response.headers.get("content-type")
            except (httpx.TransportError, TimeoutError) as exc:
                raise transport_error(exc, "GET", url) from None
        raise AssertionError("unreachable")


def _error_of(response: httpx.Response, scope: str | None = None) -> ErrorInfo:
    try:
        body = orjson.loads(response.content) if response.content else None
    except orjson.JSONDecodeError:
        body = None
    retry_after = _retry_after(response.headers.get("retry-after"))
    return parse_error_envelope(body, response.status_code, retry_after_header=retry_after, needed_scope=scope)


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # HTTP-date form: Graph does not use it; ignore rather than guess


def _redact(info: ErrorInfo, token: str) -> ErrorInfo:
    """Graph echoes a malformed token in some messages ("Malformed access token EAAB...")."""
    fields = ("message", "title", "details", "user_title", "user_message")
    if not any(token in (getattr(info, f) or "") for f in fields):
        return info
    changes = {f: getattr(info, f).replace(token, _REDACTED) for f in fields if getattr(info, f)}
    return dataclasses.replace(info, **changes)


def _path_of(url: str) -> str:
    return httpx.URL(url).path


def transport_error(exc: Exception, method: str, url: str) -> Exception:
    """Map an httpx / asyncio failure to NetworkError with the right outcome flag."""
    where = f"{method} {_path_of(url)}"
    if isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout):
        return ConnectTimeout(f"{where}: no connection within the timeout ({type(exc).__name__})")
    if isinstance(exc, httpx.ConnectError):
        return NetworkError(f"{where}: cannot connect ({exc})", outcome_unknown=False)
    if isinstance(exc, httpx.TimeoutException | TimeoutError):
        return SendTimeout(f"{where}: no answer within the timeout ({type(exc).__name__}); the outcome is unknown")
    if isinstance(exc, httpx.TransportError):
        # The request may have been written before the connection broke.
        return NetworkError(
            f"{where}: connection failed ({type(exc).__name__}: {exc}); the outcome is unknown",
            outcome_unknown=method != "GET",
        )
    return exc


def _encode_body(body: Mapping[str, Any]) -> bytes:
    """The JSON request body; a value JSON cannot carry to Graph (an integer past 64 bits, a NaN
    key, a non-string key) is the caller's mistake, refused before anything is sent."""
    try:
        return orjson.dumps(body)
    except TypeError as exc:
        raise MessageValidationError("", f"the request body cannot be sent as JSON: {exc}") from None
