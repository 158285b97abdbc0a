"""waflow's configuration: one `waflow.toml` plus `WAFLOW_*` environment variables (they win; nest with `__`).

    from waflow.config import load_settings, ConfigError

    try:
        settings = load_settings("waflow.toml")      # or None: $WAFLOW_CONFIG, else ./waflow.toml, else env only
    except ConfigError as exc:
        print(exc)  # "numbers[0].app_secret: environment variable WA_SECRET is not set"

Secrets are references: `env:VAR`, `file:/path`, or the value itself (discouraged); they are `SecretStr`.
"""

from waflow.config.load import (
    CONFIG_ENV,
    DEFAULT_FILE,
    ConfigError,
    describe_errors,
    find_config_file,
    load_settings,
)
from waflow.config.model import (
    ApiSettings,
    CommandSettings,
    GraphSettings,
    HttpNodeSettings,
    NumberSettings,
    ServerSettings,
    Settings,
    hash_api_key,
)
from waflow.config.secrets import SecretUnavailable, resolve_secret, token_provider

__all__ = [
    "CONFIG_ENV",
    "DEFAULT_FILE",
    "ApiSettings",
    "CommandSettings",
    "ConfigError",
    "GraphSettings",
    "HttpNodeSettings",
    "NumberSettings",
    "SecretUnavailable",
    "ServerSettings",
    "Settings",
    "describe_errors",
    "find_config_file",
    "hash_api_key",
    "load_settings",
    "resolve_secret",
    "token_provider",
]
