"""waflow.store: the one store API, on SQLite (default, a file) and PostgreSQL.

Open, migrate, use, close::

    store = Store.open("sqlite+aiosqlite:///waflow.db")   # or "postgresql+asyncpg://..." or a path
    await store.upgrade()                                  # Alembic, shipped in the package
    async with store.begin() as conn:                      # one transaction
        ids = await store.inbox.insert_events(conn, [NewInboundEvent.from_message(m, now)])
        await store.contacts.upsert_from_inbound(conn, m.phone_number_id, m.contact, m.timestamp)
    await store.close()

Repositories hold no state and take an `AsyncConnection`, so callers compose them in one
transaction. They store and fetch; business rules live in the parts that call them (the one
rule here is the status ordering in `transitions`, which *is* the store's promise).

Schema (migrations in `waflow/store/migrations/versions/`, linear; timestamps are UTC and
timezone-aware; JSON is JSON on SQLite, JSONB on PostgreSQL):

`contacts` — one row per (business number, person); the identity rule (link, merge, a number that
    changed hands) is in `waflow.store.contacts`.
    id, phone_number_id, contact_key (wa_id, else user_id, when created; UNIQUE per phone_number_id;
    never changes), wa_id, user_id (each UNIQUE per phone_number_id when set), profile_name,
    last_inbound_at (drives the 24 h window; only moves forward), opted_out, opted_out_at (when the
    current opt-out was recorded), created_at, updated_at, merged_into (an alias: the contact this row
    was merged into; its key resolves there).

`consent_events` — every change of a contact's consent, written with it by `ConsentRepository.set`.
    id, phone_number_id, contact_id, contact_key, action (opt_out/opt_in), source (keyword/api),
    actor, detail, at. Index: per (contact_id, id) (the contact's history).

`inbound_events` — the inbox; id order is processing order.
    id, dedup_key UNIQUE (`msg:<wamid>`, `st:<wamid>:<status>`, `tpl:...`, `<kind>:<sha256>`),
    kind (message/status/template_status/error/other), provider, phone_number_id (NULL for
    WABA-level events), contact_key, provider_message_id, payload (canonical event JSON),
    received_at, state (pending/done/failed/dead), attempts, processed_at, error.
    Indexes: open events per (phone_number_id, contact_key, id); open events per (kind, id); every
    event per (phone_number_id, contact_key, id) (timelines).

`dead_letters` — webhook bodies, or rejected fragments of them, that did not parse.
    id, received_at, phone_number_id, reason, headers (JSON, sanitised by the caller), body (bytes: the
    raw body, or a fragment's own small body), place (where in the body the fragment was; NULL for a
    whole body), body_sha256 (UNIQUE: a redelivery counts), copies, last_received_at.

`outbound_messages` — the outbox.
    id, phone_number_id, contact_key, to_number (OutboundMessage.to), recipient_user_id
    (OutboundMessage.recipient), type, content JSON, reply_to, status (DeliveryStatus value),
    provider_message_id (wamid, UNIQUE when set), business_initiated, fallback_template JSON,
    campaign_id, session_id, node_id (no FKs yet), due_at, attempts, claimed_by, claimed_until
    (dispatcher lease), outcome_unknown_since, error_code, error_class, error_text, created_at,
    updated_at, accepted_at, sent_at, delivered_at, read_at, played_at, failed_at, queue_head (the
    lowest queued id of its recipient; kept by triggers).
    Indexes: queued rows per (phone_number_id, contact_key, id) — each recipient's queue; claimable
    heads per (phone_number_id, campaign_id, due_at, id) — the claim's lanes; failed rows not yet
    classified; every message per (phone_number_id, contact_key, id) (timelines); rows refused for an
    opt-out per campaign_id.

`outbound_counts`, `campaign_counts` — counters kept by triggers on `outbound_messages` (rows per
    number, status and waiting reason; per campaign and status), sharded per PostgreSQL backend so
    concurrent writers never share a row; a count is the sum over shards (revision 0006 says why).

`send_attempts` — one row per send try.
    id, outbound_id FK, attempt (1, 2, ...), started_at, finished_at, outcome
    (accepted/error/unknown), http_status, error_code, detail.

`status_events` — every status webhook for our messages (history), and the holding place for
    statuses whose wamid is not recorded yet (outbound_id NULL).
    id, outbound_id FK NULL, provider_message_id, status, occurred_at (provider time),
    recorded_at, error_code, error_title, error_details, callback_data, raw JSON,
    applied (matched to its message), advanced (moved the message's status), phone_number_id (the
    number the webhook named: a status applies only to that number's message).

`sessions` — conversation state machines; at most one not `ended` per contact.
    id, contact_id FK, flow_id, flow_version, state (running/waiting/handoff/ended),
    current_node, vars JSON, waiting_for, step_count, started_at, updated_at, ended_at, end_reason.

`timers` — id, session_id FK NULL, phone_number_id, contact_key, kind, fire_at, payload JSON,
    state (pending/fired/cancelled), created_at, fired_at. Pending timers by fire_at; fired and
    cancelled ones are swept (deleted) by the scheduler.

The schema version lives in table `waflow_schema_version` (Alembic's version table).
"""

from __future__ import annotations

from waflow.store.contacts import SERVICE_WINDOW, ContactRecord, ContactRepository, window_open_at
from waflow.store.dead_letters import DeadLetterRecord, DeadLetterRepository
from waflow.store.engine import DEFAULT_URL, URL_ENV, create_engine, default_url, normalize_url
from waflow.store.inbox import (
    InboundEventRecord,
    InboxRepository,
    NewInboundEvent,
    message_dedup_key,
    payload_dedup_key,
    status_dedup_key,
)
from waflow.store.migrate import head_revision
from waflow.store.outbox import OutboundHistory, OutboundRecord, OutboxRepository, SendAttemptRecord
from waflow.store.sessions import SessionConflict, SessionRecord, SessionRepository
from waflow.store.statuses import (
    CALLBACK_PREFIX,
    AppliedResult,
    Classifier,
    StatusEventRecord,
    StatusOutcome,
    StatusRepository,
    build_callback_data,
    parse_callback_data,
)
from waflow.store.store import Store, describe_url
from waflow.store.timers import TimerRecord, TimerRepository
from waflow.store.transitions import MessageState
from waflow.store.types import utcnow

__all__ = [
    "CALLBACK_PREFIX",
    "DEFAULT_URL",
    "SERVICE_WINDOW",
    "URL_ENV",
    "AppliedResult",
    "Classifier",
    "ContactRecord",
    "ContactRepository",
    "DeadLetterRecord",
    "DeadLetterRepository",
    "InboundEventRecord",
    "InboxRepository",
    "MessageState",
    "NewInboundEvent",
    "OutboundHistory",
    "OutboundRecord",
    "OutboxRepository",
    "SendAttemptRecord",
    "SessionConflict",
    "SessionRecord",
    "SessionRepository",
    "StatusEventRecord",
    "StatusOutcome",
    "StatusRepository",
    "Store",
    "TimerRecord",
    "TimerRepository",
    "build_callback_data",
    "create_engine",
    "default_url",
    "describe_url",
    "head_revision",
    "message_dedup_key",
    "normalize_url",
    "parse_callback_data",
    "payload_dedup_key",
    "status_dedup_key",
    "utcnow",
    "window_open_at",
]
