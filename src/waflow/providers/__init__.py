"""Provider adapters: wire shapes of each provider ↔ canonical types. Adapters hold no state."""

from waflow.providers.cloud import (
    ContactSeen,
    ParsedEvent,
    ParsedWebhook,
    WebhookParseError,
    parse_document,
    parse_webhook,
)

__all__ = [
    "ContactSeen",
    "ParsedEvent",
    "ParsedWebhook",
    "WebhookParseError",
    "parse_document",
    "parse_webhook",
]
