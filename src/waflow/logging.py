"""Structured logs: text or JSON lines, correlation fields, and a filter that redacts secrets from every record.

    from waflow.logging import configure_logging, log_context

    configure_logging("json", "info", secrets=settings.secret_values())
    with log_context(outbox_id=42, wamid="wamid.X"):
        log.info("sent")          # {"ts": ..., "level": "info", "logger": ..., "msg": "sent", "outbox_id": 42, ...}

Fields given as `extra={"outbox_id": ...}` or bound with `log_context` appear in JSON output and, in text
output, as `key=value` after the message. The `RedactingFilter` sits on the handler, so every record —
waflow's, uvicorn's, httpx's — passes through it: `Bearer <token>`, `access_token=...`, `hub.verify_token=...`
and every configured secret are replaced by `***`, in the message, its arguments, extras and tracebacks.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as _dt
import logging
import re
import sys
from collections.abc import Iterable, Iterator
from typing import Any, TextIO

import orjson

CORRELATION_FIELDS = (
    "outbox_id", "message_id", "wamid", "session_id", "event_id", "phone_number_id", "contact", "flow_id",
    "campaign_id", "request_id",
)  # fmt: skip
MASK = "***"
_PATTERNS = [
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=\-]{4,}"),
    re.compile(r"(?i)((?:access_token|hub\.verify_token|verify_token|app_secret|client_secret)[\"']?\s*[=:]\s*[\"']?)"
               r"[^\s&\"',;}]+"),
    re.compile(r"(sha256=)[0-9a-f]{16,}"),
]
_EMPTY: dict[str, Any] = {}
_context: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar("waflow_log_context")
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime", "taskName"}


@contextlib.contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Bind correlation fields (outbox_id=..., wamid=...) to every record logged inside the block."""
    token = _context.set({**_context.get(_EMPTY), **fields})
    try:
        yield
    finally:
        _context.reset(token)


class Redactor:
    """Replaces token-shaped text and the configured secret values by `***`."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: list[str] = []
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        values = {s for s in secrets if s and len(s) >= 4}
        self._secrets = sorted(set(self._secrets) | values, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        for pattern in _PATTERNS:
            text = pattern.sub(lambda m: m.group(1) + MASK, text)
        return text


class RedactingFilter(logging.Filter):
    """Renders each record's message, redacts it (and extras, and the traceback) before any handler formats it."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor
        self._fmt = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not drop the record
            message = f"{record.msg!r} {record.args!r}"
        record.msg = self.redactor(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._fmt.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redactor(record.exc_text)
            record.exc_info = None  # the redacted text is what gets printed
        if record.stack_info:
            record.stack_info = self.redactor(record.stack_info)
        for key, value in _context.get(_EMPTY).items():
            if not hasattr(record, key):
                setattr(record, key, value)
        for key, value in list(record.__dict__.items()):
            if key not in _STANDARD and isinstance(value, str):
                setattr(record, key, self.redactor(value))
        return True


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD and not k.startswith("_")}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, the correlation fields and any extras, exc."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": _dt.datetime.fromtimestamp(record.created, _dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        out.update(_extras(record))
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            out["exc"] = record.exc_text
        return orjson.dumps(out, default=str).decode()


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = _extras(record)
        if extras:
            head, sep, tail = line.partition("\n")
            head += " " + " ".join(f"{k}={v}" for k, v in extras.items())
            line = head + sep + tail
        return line


_HANDLER_NAME = "waflow"


def configure_logging(
    fmt: str = "text", level: str = "info", *, secrets: Iterable[str] = (), stream: TextIO | None = None
) -> Redactor:
    """Install waflow's handler on the root logger (replacing a previous one); returns its redactor.

    uvicorn's loggers are routed through it too, so access and error lines are redacted alike.
    """
    redactor = Redactor(secrets)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(RedactingFilter(redactor))
    root = logging.getLogger()
    for old in list(root.handlers):
        if old.get_name() == _HANDLER_NAME or isinstance(old, logging.StreamHandler):
            root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        lg = logging.getLogger(name)
        lg.handlers.clear()
        lg.propagate = True
    logging.getLogger("httpx").setLevel(max(logging.WARNING, root.level))
    # Debug logging is for waflow's own lines: the drivers' statement logs carry message texts and phone
    # numbers (the engines hide bound parameters too: `store.engine.create_engine`)
    for name in ("sqlalchemy", "aiosqlite", "asyncpg", "hpack", "httpcore"):
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
    return redactor


def uvicorn_log_config() -> dict[str, Any]:
    """A uvicorn `log_config` that leaves its loggers to the root handler (and so to the redactor)."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "loggers": {
            name: {"handlers": [], "propagate": True} for name in ("uvicorn", "uvicorn.error", "uvicorn.access")
        },
    }


__all__ = [
    "CORRELATION_FIELDS",
    "JsonFormatter",
    "RedactingFilter",
    "Redactor",
    "TextFormatter",
    "configure_logging",
    "log_context",
    "uvicorn_log_config",
]
