"""What the admin API works with: the store, a Cloud API client per number, and the hooks into the running parts."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field

from waflow.cloudapi import CloudAPIClient
from waflow.store import Store


@dataclass
class ApiContext:
    """Built by the composition root (`waflow.server`); the routes reach it through `request.app.state.api`.

    `key_hashes`: `sha256:<hex>` of each accepted admin key. `notify_outbox`: wake the dispatchers after an
    enqueue. `ready`: extra readiness checks (name → awaitable of an error text or None).
    """

    store: Store
    clients: Mapping[str, CloudAPIClient]
    key_hashes: Sequence[str] = ()
    notify_outbox: Callable[[], None] = lambda: None
    public_metrics: bool = True
    ready_checks: dict[str, Callable[[], Awaitable[str | None]]] = field(default_factory=dict)
    refresh_gauges: Callable[[], Awaitable[None]] | None = None

    def default_number(self) -> str:
        return next(iter(self.clients))
