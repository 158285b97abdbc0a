"""The settings of one waflow deployment: `waflow.toml` + `WAFLOW_*` environment variables.

Every field is validated when the settings load; secrets (`token`, `app_secret`, `verify_token`,
admin API keys) are `SecretStr` and resolved from their references (`env:VAR`, `file:/path`) at
load time, so a missing variable is an error that names the setting and the variable.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
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


class OutboxSettings(_Section):
    """How the dispatchers treat a send whose outcome is unknown (a timeout, a dropped connection, a crash)."""

    lease_s: float = Field(
        60.0, ge=5, le=3600,
        description="a claimed row is held this long; a process that died holding it leaves it unknown after",
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
    def _lease_outlasts_a_send(self) -> Settings:
        # a lease that ends while its send is still under way makes the send "unknown" and may send it twice
        longest = self.graph.timeout_s + 5
        if self.outbox.lease_s <= longest:
            raise ValueError(f"outbox.lease_s ({self.outbox.lease_s:g} s) must exceed the longest send, "
                             f"graph.timeout_s + 5 = {longest:g} s")
        return self

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
