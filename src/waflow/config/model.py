"""The settings of one waflow deployment: `waflow.toml` + `WAFLOW_*` environment variables.

Every field is validated when the settings load; secrets (`token`, `app_secret`, `verify_token`,
admin API keys) are `SecretStr` and resolved from their references (`env:VAR`, `file:/path`) at
load time, so a missing variable is an error that names the setting and the variable.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import re
import ssl
import urllib.parse
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from waflow.cloudapi.tokens import TokenProvider
from waflow.cloudapi.transport import DEFAULT_API_VERSION, DEFAULT_BASE_URL
from waflow.config.secrets import SecretUnavailable, kind_of, resolve, resolve_secret, token_provider
from waflow.outbox.limits import tier_limit
from waflow.webhooks.config import DEFAULT_MAX_COMMIT_WAIT_S, DEFAULT_MAX_UNCOMMITTED_EVENTS

_DIGITS = re.compile(r"^\d{1,32}$")
_SHA256 = re.compile(r"^sha256:[0-9a-f]{64}$")
_API_VERSION = re.compile(r"^v\d+\.\d+$")


def hash_api_key(key: str) -> str:
    """The stored form of an admin API key: `sha256:<hex>` (what `api.keys` may hold instead of the key)."""
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NumberSettings(_Section):
    """One business phone number on the Cloud API."""

    phone_number_id: str = Field(description="the number's id on the Cloud API (digits)")
    waba_id: str | None = Field(None, description="its WhatsApp Business Account id (templates need it)")
    display_name: str | None = Field(None, max_length=256)
    token: SecretStr = Field(description="access token: env:VAR, file:/path, or the token itself (discouraged)")
    app_id: str | None = Field(
        None, description="the Meta app's id (App Dashboard > App settings > Basic): with app_secret, lets waflow "
                          "check the token (`debug_token`) and exchange a user token for a long-lived one",
    )
    app_secret: SecretStr = Field(description="the Meta app's secret that signs webhooks: env:, file: or literal")
    verify_token: SecretStr = Field(description="verify token of the webhook handshake: env:, file: or literal")
    throughput: float = Field(80.0, gt=0, le=1000, description="messages/s to this number's users, all processes")
    tier: str | None = Field(
        None, description="messaging tier (TIER_250, TIER_1K, ..., TIER_UNLIMITED); unset: not counted locally"
    )

    @field_validator("phone_number_id", "waba_id", "app_id")
    @classmethod
    def _digits(cls, value: str | None) -> str | None:
        if value is not None and not _DIGITS.match(value):
            raise ValueError("must be the numeric id Meta shows (digits only)")
        return value

    @field_validator("app_secret", "verify_token")
    @classmethod
    def _resolve(cls, value: SecretStr) -> SecretStr:
        try:
            return resolve(value)
        except SecretUnavailable as exc:
            raise ValueError(str(exc)) from None

    @field_validator("token")
    @classmethod
    def _token_available(cls, value: SecretStr) -> SecretStr:
        try:
            resolve_secret(value.get_secret_value())  # checked now, read again by the provider on refresh
        except SecretUnavailable as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("tier")
    @classmethod
    def _tier(cls, value: str | None) -> str | None:
        if value is None:
            return None
        tier_limit(value)  # ValueError naming the known tiers
        return value.strip().upper()

    @property
    def token_is_literal(self) -> bool:
        return kind_of(self.token.get_secret_value()) == "literal"

    @property
    def tier_limit(self) -> int | None:
        return tier_limit(self.tier) if self.tier else None

    def token_provider(self) -> TokenProvider:
        return token_provider(self.token)


class GraphSettings(_Section):
    """Where the Cloud API is: Meta's Graph API, or the emulator (`http://127.0.0.1:8088`)."""

    base_url: str = DEFAULT_BASE_URL
    api_version: str = DEFAULT_API_VERSION
    timeout_s: float = Field(30.0, gt=0, le=300, description="read timeout of one Graph call")

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/")

    @field_validator("api_version")
    @classmethod
    def _version(cls, value: str) -> str:
        if not _API_VERSION.match(value):
            raise ValueError("must look like v23.0")
        return value


class ServerSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    webhook_path: str = Field("/webhook", pattern=r"^/[A-Za-z0-9_\-/]*$")
    shutdown_timeout_s: float = Field(10.0, gt=0, le=600, description="in-flight work gets this long at shutdown")
    run_engine: bool = Field(True, description="run the flow engine in `waflow serve` (off: leave it to workers)")
    run_dispatcher: bool = Field(True, description="run the outbox dispatcher in `waflow serve`")
    poll_interval_s: float = Field(0.02, gt=0, le=10, description="idle poll of the engine and the dispatcher")
    worker_port: int | None = Field(
        None, ge=0, le=65535,
        description="`waflow worker` serves /healthz, /readyz and /metrics on this port (of `host`); unset: no HTTP",
    )
    webhook_max_uncommitted_events: int = Field(
        DEFAULT_MAX_UNCOMMITTED_EVENTS, gt=0,
        description="webhook events waiting for their inbox commit beyond which a POST is answered 503 + "
                    "Retry-After (nothing stored; Meta retries) instead of queueing: overload keeps answers fast",
    )
    webhook_max_commit_wait_s: float = Field(
        DEFAULT_MAX_COMMIT_WAIT_S, gt=0,
        description="seconds a webhook POST may be predicted to wait for its inbox commit (events waiting / recent "
                    "commit rate, or the oldest one's wait) beyond which it is answered 503 + Retry-After instead",
    )
    # -- transport: TLS, proxies (see `waflow.server.intake` and `waflow.server.protocol`) --------------------
    tls_certfile: Path | None = Field(
        None, description="PEM certificate chain: `waflow serve` speaks HTTPS (with tls_keyfile unless the file "
                          "holds the key too)",
    )
    tls_keyfile: Path | None = Field(None, description="PEM private key of tls_certfile")
    tls_keyfile_password: SecretStr | None = Field(
        None, description="password of an encrypted tls_keyfile: env:VAR, file:/path or the value itself",
    )
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="IPs / CIDRs of the reverse proxies whose X-Forwarded-For / X-Forwarded-Proto are believed "
                    "(everyone else's are ignored)",
    )
    require_https: bool = Field(
        False, description="refuse (403) a request that did not arrive over TLS, directly or through a trusted "
                           "proxy that says X-Forwarded-Proto: https",
    )
    # -- bounded intake ------------------------------------------------------------------------------------------
    header_timeout_s: float = Field(
        10.0, gt=0, le=300, description="a connection must deliver a request's headers within this long (from the "
                                        "accept, or from the request's first byte on a kept-alive connection)",
    )
    body_timeout_s: float = Field(
        30.0, gt=0, le=600, description="a request's body must arrive whole within this long of its headers (408)",
    )
    keep_alive_timeout_s: float = Field(5.0, gt=0, le=600, description="an idle kept-alive connection is closed after")
    max_header_bytes: int = Field(
        32768, ge=1024, le=1048576, description="request line + headers larger than this are refused (431)",
    )
    api_max_body_bytes: int = Field(
        1_000_000, gt=0, le=1 << 30,
        description="request bodies beyond the webhook endpoint (admin API, ...) larger than this are refused (413) "
                    "while streaming; a flow upload is capped at 1,000,000 bytes whatever this says",
    )
    max_connections: int = Field(
        1000, gt=0, le=1_000_000, description="open connections beyond this are closed at once on accept",
    )
    max_connections_per_address: int = Field(
        100, gt=0, le=1_000_000,
        description="open connections from one client address beyond this are closed at once on accept "
                    "(trusted proxies are exempt)",
    )
    # -- rate limits (token buckets, per process) -----------------------------------------------------------------
    auth_failures_per_s: float = Field(
        2.0, gt=0, le=1_000_000,
        description="per client address: requests refused for a missing/wrong API key, a missing/bad webhook "
                    "signature or plain HTTP under require_https, beyond which they are answered 429",
    )
    auth_failures_burst: int = Field(10, gt=0, le=1_000_000, description="... and the burst allowed")
    api_requests_per_s: float = Field(
        100.0, gt=0, le=1_000_000, description="admin API requests per API key (429 + Retry-After beyond)",
    )
    api_burst: int = Field(200, gt=0, le=1_000_000, description="... and the burst allowed")
    intake_requests_per_s: float = Field(
        5000.0, gt=0, le=10_000_000,
        description="global ceiling: requests per second admitted past the key / signature-header checks; beyond, "
                    "503 + Retry-After (Meta retries)",
    )
    intake_burst: int = Field(10000, gt=0, le=10_000_000, description="... and the burst allowed")
    penalized_connections_per_s: float = Field(
        10.0, gt=0, le=1_000_000,
        description="new connections from addresses over their failure budget are read at most this many per "
                    "second, all such addresses together (a signed webhook among them is still stored)",
    )

    @field_validator("tls_certfile", "tls_keyfile")
    @classmethod
    def _readable(cls, value: Path | None) -> Path | None:
        if value is None:
            return None
        path = value.expanduser()
        try:
            with path.open("rb") as fh:
                fh.read(1)
        except IsADirectoryError:
            raise ValueError(f"{path} is a directory, not a PEM file") from None
        except OSError as exc:
            raise ValueError(f"file {path} is unreadable ({exc.strerror or type(exc).__name__})") from None
        return path

    @field_validator("tls_keyfile_password")
    @classmethod
    def _password(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        try:
            return resolve(value)
        except SecretUnavailable as exc:
            raise ValueError(str(exc)) from None

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        out: list[str] = []
        for i, entry in enumerate(value):
            try:
                out.append(str(ipaddress.ip_network(entry.strip(), strict=False)))
            except ValueError:
                raise ValueError(f"[{i}]: {entry.strip()[:64]!r} is not an IP address or CIDR "
                                 "(e.g. 10.0.0.5 or 10.0.0.0/24)") from None
        return out

    @model_validator(mode="after")
    def _tls(self) -> ServerSettings:
        if self.tls_keyfile is not None and self.tls_certfile is None:
            raise ValueError("server.tls_certfile: is required when server.tls_keyfile is set")
        if self.tls_keyfile_password is not None and self.tls_certfile is None:
            raise ValueError("server.tls_certfile: is required when server.tls_keyfile_password is set")
        if self.tls_certfile is not None:
            self.tls_context()  # ValueError naming the file and what is wrong with it
        if self.require_https and self.tls_certfile is None and not self.trusted_proxies:
            raise ValueError("server.require_https: needs server.tls_certfile (TLS here) or server.trusted_proxies "
                             "(TLS at a proxy): otherwise no request could ever arrive over HTTPS")
        return self

    @property
    def tls(self) -> bool:
        return self.tls_certfile is not None

    def tls_context(self) -> ssl.SSLContext:
        """The server's TLS context (TLS 1.2 or newer, HTTP/1.1); ValueError naming the setting when the
        certificate or key cannot be used. Never prompts for a key password (an encrypted key without
        `tls_keyfile_password` is an error)."""
        assert self.tls_certfile is not None
        password = self.tls_keyfile_password.get_secret_value() if self.tls_keyfile_password else ""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.set_alpn_protocols(["http/1.1"])
        key = self.tls_keyfile or self.tls_certfile
        try:
            ctx.load_cert_chain(self.tls_certfile, self.tls_keyfile, password=lambda: password.encode())
        except OSError as exc:  # ssl.SSLError is an OSError too
            raise ValueError(_tls_problem(exc, self.tls_certfile, key, bool(password))) from None
        return ctx


def _tls_problem(exc: OSError, certfile: Path, keyfile: Path, has_password: bool) -> str:
    """What is wrong with a certificate / key pair, in words (never the password)."""
    reason = str(getattr(exc, "reason", "") or "")

    def head(path: Path) -> bytes:
        try:
            return path.read_bytes()[: 1 << 20]
        except OSError:
            return b""

    if reason == "KEY_VALUES_MISMATCH":
        return f"server.tls_keyfile: the key in {keyfile} does not belong to the certificate in {certfile}"
    if b"-----BEGIN CERTIFICATE-----" not in head(certfile):
        return f"server.tls_certfile: {certfile} holds no PEM certificate (-----BEGIN CERTIFICATE-----)"
    key_text = head(keyfile)
    if b"PRIVATE KEY-----" not in key_text:
        return f"server.tls_keyfile: {keyfile} holds no PEM private key (-----BEGIN ... PRIVATE KEY-----)"
    if b"ENCRYPTED" in key_text:
        what = "is wrong" if has_password else "is not set"
        return f"server.tls_keyfile_password: {what}: the key in {keyfile} is encrypted"
    detail = reason or str(exc) or type(exc).__name__
    return f"server.tls_certfile: the certificate {certfile} and key {keyfile} cannot be used ({detail})"


class OutboxSettings(_Section):
    """How the dispatchers treat a send whose outcome is unknown (a timeout, a dropped connection, a crash)."""

    lease_s: float = Field(
        15.0, ge=3, le=3600,
        description="a claimed row is held this long, renewed every lease_s / 3 while its process lives: a dead "
                    "process's rows return after it (untried ones due at once, maybe-sent ones after the grace)",
    )
    unknown_grace_s: float = Field(
        60.0, ge=1, le=86400,
        description="listening time a send with an unknown outcome waits for a status webhook before a resend",
    )


class CommandSettings(_Section):
    """Global keywords, checked before any flow (a whole message, case-insensitive)."""

    stop: list[str] = Field(default_factory=lambda: ["stop"], description="opt out of business messages")
    start: list[str] = Field(default_factory=lambda: ["start"], description="opt back in")
    agent: list[str] = Field(default_factory=lambda: ["agent"], description="hand the conversation to a person")
    restart: list[str] = Field(default_factory=lambda: ["restart"], description="restart from the first message")

    @model_validator(mode="after")
    def _distinct(self) -> CommandSettings:
        seen: dict[str, str] = {}
        for name in ("stop", "start", "agent", "restart"):
            for word in getattr(self, name):
                key = word.strip().casefold()
                if not key:
                    raise ValueError(f"{name}: a keyword must not be empty")
                if key in seen and seen[key] != name:
                    raise ValueError(f"{name}: keyword {word!r} is also a {seen[key]} keyword")
                seen[key] = name
        return self


class ApiSettings(_Section):
    """The admin API: bearer keys (`sha256:<hex>` of the key — see `waflow config hash-key` — or env:/file:)."""

    keys: list[SecretStr] = Field(default_factory=list)
    docs: bool = Field(True, description="serve /docs and /openapi.json")
    public_metrics: bool = Field(True, description="serve /metrics without a key")

    @field_validator("keys")
    @classmethod
    def _hash(cls, value: list[SecretStr]) -> list[SecretStr]:
        hashed: list[SecretStr] = []
        for i, key in enumerate(value):
            raw = key.get_secret_value().strip()
            if _SHA256.match(raw):
                hashed.append(SecretStr(raw))
                continue
            try:
                plain = resolve_secret(raw)
            except SecretUnavailable as exc:
                raise ValueError(f"[{i}]: {exc}") from None
            if len(plain) < 16:
                raise ValueError(f"[{i}]: an API key needs at least 16 characters")
            hashed.append(SecretStr(hash_api_key(plain)))
        return hashed


class EngineSettings(_Section):
    """Bounded work per contact (the engine's `EngineConfig` has the why of each)."""

    expression_work: int = Field(500_000, ge=1_000, le=100_000_000,
                                 description="work units one template or expression may use")
    expression_timeout_s: float = Field(0.1, gt=0, le=10, description="seconds one template or expression may take")
    event_expression_timeout_s: float = Field(0.25, gt=0, le=60,
                                              description="seconds all the templates of one event may take")
    turn_share: int = Field(4, ge=1, le=10_000, description="events of one contact per turn while others wait")
    max_pending_per_contact: int = Field(100, ge=1, le=10_000,
                                         description="messages of one contact waiting at most; newer ones beyond "
                                                     "are set aside unprocessed (counted, logged)")
    round_time_s: float = Field(0.25, gt=0, le=60, description="an engine round takes no further event after this")


class HttpNodeSettings(_Section):
    allow_hosts: list[str] = Field(
        default_factory=list, description="hosts an http node may reach although they are private/loopback"
    )


LogFormat = Literal["text", "json"]
LogLevel = Literal["debug", "info", "warning", "error"]


class Settings(BaseSettings):
    """A deployment: `waflow.toml`, overridden by `WAFLOW_*` variables (nested with `__`)."""

    model_config = SettingsConfigDict(
        env_prefix="WAFLOW_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
        nested_model_default_partial_update=True,
    )

    numbers: list[NumberSettings] = Field(min_length=1, description="the business numbers this deployment serves")
    graph: GraphSettings = Field(default_factory=GraphSettings)
    server: ServerSettings = Field(default_factory=ServerSettings)
    outbox: OutboxSettings = Field(default_factory=OutboxSettings)
    store_url: str | None = Field(None, description="SQLAlchemy URL or SQLite path; default ./waflow.db")
    redis_url: str | None = Field(None, description="shared rate limits across processes (redis://...)")
    flows_dir: Path | None = Field(None, description="flow files (.yaml/.json) deployed at startup")
    commands: CommandSettings = Field(default_factory=CommandSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    http: HttpNodeSettings = Field(default_factory=HttpNodeSettings)
    engine: EngineSettings = Field(default_factory=EngineSettings)
    log_format: LogFormat = "text"
    log_level: LogLevel = "info"

    @field_validator("redis_url")
    @classmethod
    def _redis(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be a redis://, rediss:// or unix:// URL")
        return value

    @field_validator("store_url")
    @classmethod
    def _store(cls, value: str | None) -> str | None:
        if value is None:
            return None
        from waflow.store.engine import normalize_url

        try:
            normalize_url(value)
        except Exception as exc:
            raise ValueError(f"not a usable database URL or path ({type(exc).__name__})") from None
        return value

    @model_validator(mode="after")
    def _unique_numbers(self) -> Settings:
        seen: set[str] = set()
        for i, number in enumerate(self.numbers):
            if number.phone_number_id in seen:
                raise ValueError(f"numbers[{i}].phone_number_id: {number.phone_number_id} is listed twice")
            seen.add(number.phone_number_id)
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The file's content comes in as init values; environment variables win over it.
        return (env_settings, init_settings)

    def number(self, phone_number_id: str | None = None) -> NumberSettings:
        """The number with that id (the first one when None); KeyError when not configured."""
        if phone_number_id is None:
            return self.numbers[0]
        for number in self.numbers:
            if number.phone_number_id == phone_number_id:
                return number
        raise KeyError(phone_number_id)

    def secret_values(self) -> list[str]:
        """Every resolved secret, for the log redactor."""
        values: list[str] = []
        for number in self.numbers:
            values += [number.app_secret.get_secret_value(), number.verify_token.get_secret_value()]
            with contextlib.suppress(SecretUnavailable):
                values.append(resolve_secret(number.token.get_secret_value()))
        values += [p for url in (self.store_url, self.redis_url) if url and (p := url_password(url))]
        if self.server.tls_keyfile_password is not None:
            values.append(self.server.tls_keyfile_password.get_secret_value())
        return [v for v in values if v]

    def redacted(self) -> dict[str, Any]:
        """The settings as JSON-able data with every secret masked (for `waflow config check`): secret fields,
        and the passwords of the database and Redis URLs."""
        data = self.model_dump(mode="json")
        for key in ("store_url", "redis_url"):
            if data.get(key):
                data[key] = mask_url_password(data[key])
        return data


def url_password(url: str) -> str | None:
    """The password in `scheme://user:password@host/...`, if any (percent-decoded)."""
    try:
        return urllib.parse.unquote(urllib.parse.urlsplit(url).password or "") or None
    except ValueError:
        return None


def mask_url_password(url: str) -> str:
    """`url` with its password replaced by `***` (a URL that does not parse is masked whole after the scheme)."""
    try:
        parts = urllib.parse.urlsplit(url)
        if parts.password is None:
            return url
    except ValueError:
        return url.split("://", 1)[0] + "://***"
    user = parts.username or ""
    host = parts.netloc.rsplit("@", 1)[1]
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))
