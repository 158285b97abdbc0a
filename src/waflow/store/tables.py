"""The schema as SQLAlchemy Core tables (see the package docstring for what each table is for).

These definitions are the source of truth for queries; the Alembic revisions under
`migrations/versions/` create the same schema, and a test checks that the two agree.
Change a table here and add a new revision there, never one without the other.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    text,
)

from waflow.store.types import JSONValue, UTCDateTime, utcnow

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

# An autoincrementing 64-bit key on PostgreSQL; SQLite needs exactly INTEGER for its rowid alias.
BigId = BigInteger().with_variant(Integer(), "sqlite")

INBOUND_KINDS = ("message", "status", "template_status", "error", "other")
INBOUND_STATES = ("pending", "done", "failed", "dead")
DELIVERY_STATUSES = ("queued", "accepted", "sent", "delivered", "read", "played", "failed")
ATTEMPT_OUTCOMES = ("accepted", "error", "unknown")
SESSION_STATES = ("running", "waiting", "handoff", "ended")
TIMER_STATES = ("pending", "fired", "cancelled")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


contacts = Table(
    "contacts",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("phone_number_id", String(64), nullable=False),
    Column("contact_key", String(128), nullable=False),
    Column("wa_id", String(64), nullable=True),
    Column("user_id", String(128), nullable=True),
    Column("profile_name", String(256), nullable=True),
    Column("last_inbound_at", UTCDateTime, nullable=True),
    Column("opted_out", Boolean, nullable=False, default=False, server_default=text("false")),
    Column("created_at", UTCDateTime, nullable=False, default=utcnow),
    Column("updated_at", UTCDateTime, nullable=False, default=utcnow),
    Index("uq_contacts_phone_number_id_contact_key", "phone_number_id", "contact_key", unique=True),
    Index(
        "uq_contacts_phone_number_id_wa_id",
        "phone_number_id",
        "wa_id",
        unique=True,
        sqlite_where=text("wa_id IS NOT NULL"),
        postgresql_where=text("wa_id IS NOT NULL"),
    ),
    Index(
        "uq_contacts_phone_number_id_user_id",
        "phone_number_id",
        "user_id",
        unique=True,
        sqlite_where=text("user_id IS NOT NULL"),
        postgresql_where=text("user_id IS NOT NULL"),
    ),
)

inbound_events = Table(
    "inbound_events",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("dedup_key", String(255), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("provider", String(32), nullable=False),
    Column("phone_number_id", String(64), nullable=True),  # NULL for WABA-level events (templates, account)
    Column("contact_key", String(128), nullable=True),
    Column("provider_message_id", String(255), nullable=True),
    Column("payload", JSONValue, nullable=False),
    Column("received_at", UTCDateTime, nullable=False),
    Column("state", String(16), nullable=False, default="pending", server_default="pending"),
    Column("attempts", Integer, nullable=False, default=0, server_default="0"),
    Column("processed_at", UTCDateTime, nullable=True),
    Column("error", Text, nullable=True),
    CheckConstraint(_in("kind", INBOUND_KINDS), name="kind"),
    CheckConstraint(_in("state", INBOUND_STATES), name="state"),
    Index("uq_inbound_events_dedup_key", "dedup_key", unique=True),
    # "pending events of one contact, in id order" (the engine's per-conversation queue)
    Index(
        "ix_inbound_events_open_by_contact",
        "phone_number_id",
        "contact_key",
        "id",
        sqlite_where=text("state IN ('pending', 'failed')"),
        postgresql_where=text("state IN ('pending', 'failed')"),
    ),
    # "pending events of one kind, in id order" (status appliers, the engine's scan)
    Index(
        "ix_inbound_events_open_by_kind",
        "kind",
        "id",
        sqlite_where=text("state IN ('pending', 'failed')"),
        postgresql_where=text("state IN ('pending', 'failed')"),
    ),
)

dead_letters = Table(
    "dead_letters",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("received_at", UTCDateTime, nullable=False, default=utcnow),
    Column("phone_number_id", String(64), nullable=True),
    Column("reason", Text, nullable=False),
    Column("headers", JSONValue, nullable=False),
    Column("body", LargeBinary, nullable=False),
    Index("ix_dead_letters_received_at", "received_at"),
)

outbound_messages = Table(
    "outbound_messages",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("phone_number_id", String(64), nullable=False),
    Column("contact_key", String(128), nullable=False),
    Column("to_number", String(64), nullable=True),  # OutboundMessage.to (wa_id / phone)
    Column("recipient_user_id", String(128), nullable=True),  # OutboundMessage.recipient (BSUID)
    Column("type", String(32), nullable=False),
    Column("content", JSONValue, nullable=False),
    Column("reply_to", String(255), nullable=True),
    Column("status", String(16), nullable=False, default="queued", server_default="queued"),
    Column("provider_message_id", String(255), nullable=True),
    Column("business_initiated", Boolean, nullable=False, default=False, server_default=text("false")),
    Column("fallback_template", JSONValue, nullable=True),
    Column("campaign_id", BigInteger, nullable=True),
    Column("session_id", BigInteger, nullable=True),
    Column("node_id", String(128), nullable=True),
    Column("due_at", UTCDateTime, nullable=False, default=utcnow),
    Column("attempts", Integer, nullable=False, default=0, server_default="0"),
    Column("claimed_by", String(128), nullable=True),
    Column("claimed_until", UTCDateTime, nullable=True),
    Column("outcome_unknown_since", UTCDateTime, nullable=True),
    Column("error_code", Integer, nullable=True),
    Column("error_class", String(32), nullable=True),
    Column("error_text", Text, nullable=True),
    Column("created_at", UTCDateTime, nullable=False, default=utcnow),
    Column("updated_at", UTCDateTime, nullable=False, default=utcnow),
    Column("accepted_at", UTCDateTime, nullable=True),
    Column("sent_at", UTCDateTime, nullable=True),
    Column("delivered_at", UTCDateTime, nullable=True),
    Column("read_at", UTCDateTime, nullable=True),
    Column("played_at", UTCDateTime, nullable=True),
    Column("failed_at", UTCDateTime, nullable=True),
    # revision 0002 (outbox dispatcher): why a queued row is not being sent now (tier, pair, throttled,
    # retry, unknown_outcome, ...), how many throttling answers it got (they have their own budget), and
    # whether the fallback template replaced it because the 24 h window was closed.
    Column("waiting_reason", String(32), nullable=True),
    Column("throttles", Integer, nullable=False, default=0, server_default="0"),
    Column("fallback_used", Boolean, nullable=False, default=False, server_default=text("false")),
    CheckConstraint(_in("status", DELIVERY_STATUSES), name="status"),
    CheckConstraint("to_number IS NOT NULL OR recipient_user_id IS NOT NULL", name="addressed"),
    Index(
        "uq_outbound_messages_provider_message_id",
        "provider_message_id",
        unique=True,
        sqlite_where=text("provider_message_id IS NOT NULL"),
        postgresql_where=text("provider_message_id IS NOT NULL"),
    ),
    # per-recipient queue: the head is the lowest id still queued for (phone_number_id, contact_key)
    Index(
        "ix_outbound_messages_queued_by_recipient",
        "phone_number_id",
        "contact_key",
        "id",
        sqlite_where=text("status = 'queued'"),
        postgresql_where=text("status = 'queued'"),
    ),
    Index("ix_outbound_messages_session_id", "session_id"),
    Index("ix_outbound_messages_campaign_id", "campaign_id"),
    # revision 0002: rows a dispatcher holds (lease); an expired lease is a send whose outcome is unknown
    Index(
        "ix_outbound_messages_claimed_until",
        "claimed_until",
        sqlite_where=text("claimed_until IS NOT NULL"),
        postgresql_where=text("claimed_until IS NOT NULL"),
    ),
)

send_attempts = Table(
    "send_attempts",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("outbound_id", BigInteger, ForeignKey("outbound_messages.id", ondelete="CASCADE"), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime, nullable=True),
    Column("outcome", String(16), nullable=False),
    Column("http_status", Integer, nullable=True),
    Column("error_code", Integer, nullable=True),
    Column("detail", Text, nullable=True),
    CheckConstraint(_in("outcome", ATTEMPT_OUTCOMES), name="outcome"),
    Index("ix_send_attempts_outbound_id_attempt", "outbound_id", "attempt"),
)

status_events = Table(
    "status_events",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("outbound_id", BigInteger, ForeignKey("outbound_messages.id", ondelete="CASCADE"), nullable=True),
    Column("provider_message_id", String(255), nullable=False),
    Column("status", String(16), nullable=False),
    Column("occurred_at", UTCDateTime, nullable=False),
    Column("recorded_at", UTCDateTime, nullable=False, default=utcnow),
    Column("error_code", Integer, nullable=True),
    Column("error_title", Text, nullable=True),
    Column("error_details", Text, nullable=True),
    Column("callback_data", String(512), nullable=True),
    Column("raw", JSONValue, nullable=True),
    Column("applied", Boolean, nullable=False, default=False, server_default=text("false")),
    Column("advanced", Boolean, nullable=False, default=False, server_default=text("false")),
    CheckConstraint(_in("status", DELIVERY_STATUSES), name="status"),
    Index("ix_status_events_outbound_id_id", "outbound_id", "id"),
    # held statuses: waiting for the send response to record their message id
    Index(
        "ix_status_events_held",
        "provider_message_id",
        sqlite_where=text("outbound_id IS NULL"),
        postgresql_where=text("outbound_id IS NULL"),
    ),
)

sessions = Table(
    "sessions",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("contact_id", BigInteger, ForeignKey("contacts.id", ondelete="CASCADE"), nullable=False),
    Column("flow_id", String(128), nullable=False),
    Column("flow_version", String(64), nullable=False),
    Column("state", String(16), nullable=False, default="running", server_default="running"),
    Column("current_node", String(128), nullable=True),
    Column("vars", JSONValue, nullable=False),
    Column("waiting_for", String(64), nullable=True),
    Column("step_count", Integer, nullable=False, default=0, server_default="0"),
    Column("started_at", UTCDateTime, nullable=False, default=utcnow),
    Column("updated_at", UTCDateTime, nullable=False, default=utcnow),
    Column("ended_at", UTCDateTime, nullable=True),
    Column("end_reason", Text, nullable=True),
    CheckConstraint(_in("state", SESSION_STATES), name="state"),
    # at most one session that has not ended, per contact
    Index(
        "uq_sessions_active_contact_id",
        "contact_id",
        unique=True,
        sqlite_where=text("state != 'ended'"),
        postgresql_where=text("state != 'ended'"),
    ),
    Index("ix_sessions_contact_id_id", "contact_id", "id"),
)

timers = Table(
    "timers",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("session_id", BigInteger, ForeignKey("sessions.id", ondelete="CASCADE"), nullable=True),
    Column("phone_number_id", String(64), nullable=False),
    Column("contact_key", String(128), nullable=False),
    Column("kind", String(64), nullable=False),
    Column("fire_at", UTCDateTime, nullable=False),
    Column("payload", JSONValue, nullable=False),
    Column("state", String(16), nullable=False, default="pending", server_default="pending"),
    Column("created_at", UTCDateTime, nullable=False, default=utcnow),
    Column("fired_at", UTCDateTime, nullable=True),
    CheckConstraint(_in("state", TIMER_STATES), name="state"),
    Index("ix_timers_session_id", "session_id"),
)

CAMPAIGN_STATES = ("running", "paused", "done", "cancelled")

# revision 0002: bulk sends. One outbound row per contact carries `campaign_id`; counts by status are
# read from those rows. A paused campaign's rows are not claimed by the dispatcher.
campaigns = Table(
    "campaigns",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("name", String(255), nullable=False),
    Column("phone_number_id", String(64), nullable=False),
    Column("template", String(512), nullable=False),
    Column("language", String(32), nullable=False),
    Column("params", JSONValue, nullable=False),
    Column("status", String(16), nullable=False, default="running", server_default="running"),
    Column("total", Integer, nullable=False, default=0, server_default="0"),
    Column("created_at", UTCDateTime, nullable=False, default=utcnow),
    Column("updated_at", UTCDateTime, nullable=False, default=utcnow),
    Column("finished_at", UTCDateTime, nullable=True),
    CheckConstraint(_in("status", CAMPAIGN_STATES), name="status"),
    Index("ix_campaigns_status", "status"),
)

# revision 0002: the message templates of each WABA, synced from GET /{waba}/message_templates, so that a
# template send is checked (exists, approved, parameters) before it leaves.
templates = Table(
    "templates",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("waba_id", String(64), nullable=False),
    Column("name", String(512), nullable=False),
    Column("language", String(32), nullable=False),
    Column("template_id", String(64), nullable=True),
    Column("status", String(32), nullable=False),
    Column("category", String(32), nullable=True),
    Column("parameter_format", String(16), nullable=True),
    Column("components", JSONValue, nullable=False),
    Column("synced_at", UTCDateTime, nullable=False, default=utcnow),
    Index("uq_templates_waba_id_name_language", "waba_id", "name", "language", unique=True),
)

# revision 0003 (flow engine): deployed flow versions — immutable; `content_hash` is the SHA-256 of the canonical
# definition (`waflow.engine.flows.versions.flow_hash`), `version` counts 1, 2, ... per flow; one active per flow.
flow_versions = Table(
    "flow_versions",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("flow_id", String(128), nullable=False),
    Column("version", Integer, nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("definition", JSONValue, nullable=False),
    Column("deployed_at", UTCDateTime, nullable=False, default=utcnow),
    Column("active", Boolean, nullable=False, default=False, server_default=text("false")),
    Index("uq_flow_versions_flow_id_version", "flow_id", "version", unique=True),
    Index("uq_flow_versions_flow_id_content_hash", "flow_id", "content_hash", unique=True),
    Index(
        "uq_flow_versions_active_flow_id",
        "flow_id",
        unique=True,
        sqlite_where=text("active"),
        postgresql_where=text("active"),
    ),
)

# revision 0003: the engine's private session state (call stack, retries, timer tokens), the last step error,
# and when an idle (waiting / handoff) session expires.
sessions.append_column(Column("runtime", JSONValue, nullable=True))
sessions.append_column(Column("last_error", Text, nullable=True))
sessions.append_column(Column("expires_at", UTCDateTime, nullable=True))
Index(
    "ix_sessions_expires_at",
    sessions.c.expires_at,
    sqlite_where=text("state IN ('waiting', 'handoff')"),
    postgresql_where=text("state IN ('waiting', 'handoff')"),
)
Index(
    "ix_sessions_running_updated_at",
    sessions.c.updated_at,
    sqlite_where=text("state = 'running'"),
    postgresql_where=text("state = 'running'"),
)

# revision 0003: when the engine took note of a failed outbound message of a session (`on_failed` routing).
outbound_messages.append_column(Column("engine_seen_at", UTCDateTime, nullable=True))
_FAILED_UNSEEN = "status = 'failed' AND session_id IS NOT NULL AND engine_seen_at IS NULL"
Index(
    "ix_outbound_messages_failed_unseen",
    outbound_messages.c.id,
    sqlite_where=text(_FAILED_UNSEEN),
    postgresql_where=text(_FAILED_UNSEEN),
)

# revision 0003: the engine's queue — open user messages and engine events (`engine:*` dedup keys), in id order.
ENGINE_OPEN_EVENTS = "state IN ('pending', 'failed') AND (kind = 'message' OR dedup_key LIKE 'engine:%')"
Index(
    "ix_inbound_events_engine_open",
    inbound_events.c.id,
    sqlite_where=text(ENGINE_OPEN_EVENTS),
    postgresql_where=text(ENGINE_OPEN_EVENTS),
)

# ---- revision 0004 (contact identity) ----
# A contact merged into another (the same person seen first under two ids) stays as an alias: its
# contact_key still resolves, to the row named here; it holds no wa_id / user_id of its own any more.
contacts.append_column(Column("merged_into", BigInteger, nullable=True))
Index(
    "ix_contacts_merged_into",
    contacts.c.merged_into,
    sqlite_where=text("merged_into IS NOT NULL"),
    postgresql_where=text("merged_into IS NOT NULL"),
)
# every event and message of one contact, newest first (timelines; re-keying history on a merge)
Index(
    "ix_inbound_events_phone_number_id_contact_key_id",
    inbound_events.c.phone_number_id,
    inbound_events.c.contact_key,
    inbound_events.c.id,
)
Index(
    "ix_outbound_messages_phone_number_id_contact_key_id",
    outbound_messages.c.phone_number_id,
    outbound_messages.c.contact_key,
    outbound_messages.c.id,
)

# ---- revision 0005 (dead letters) ----
# Meta redelivers a body it got no 200 for, and a body answered 200 may still come again: a dead
# letter is one row per distinct body (or rejected fragment), and a redelivery only counts a copy.
# `body_sha256`: sha256 of the raw body, or of a fragment's place + body; NULL only on rows from
# before 0005 that duplicated an earlier row (kept, not merged). `place`: where a rejected
# fragment sat in its body (`entry[0].changes[1].value.messages[3]`), NULL for a whole body.
dead_letters.append_column(Column("body_sha256", String(64), nullable=True))
dead_letters.append_column(Column("place", Text, nullable=True))
dead_letters.append_column(Column("copies", Integer, nullable=False, default=1, server_default="1"))
dead_letters.append_column(Column("last_received_at", UTCDateTime, nullable=False, default=utcnow))
Index("uq_dead_letters_body_sha256", dead_letters.c.body_sha256, unique=True)

# ---- revision 0006 (outbox counters) ----
# The dispatcher's claim, its maintenance and `/metrics` read counters and a head marker kept by triggers
# (`migrations/versions/0006_outbox_counters.py` has the why), not counts over the outbox.
# `queue_head`: this queued row is the lowest queued id of its (phone_number_id, contact_key); meaningful
# only while the row is queued. The claim walks the claimable heads per lane (number, campaign or none).
outbound_messages.append_column(
    Column("queue_head", Boolean, nullable=False, default=False, server_default=text("false"))
)
# It replaces revision 0001's queued-by-due_at index, which only the old claim read (walking every due row):
# 0006 drops it.
OUTBOUND_CLAIMABLE = "status = 'queued' AND queue_head"
Index(
    "ix_outbound_messages_claimable",
    outbound_messages.c.phone_number_id,
    outbound_messages.c.campaign_id,
    outbound_messages.c.due_at,
    outbound_messages.c.id,
    sqlite_where=text(OUTBOUND_CLAIMABLE),
    postgresql_where=text(OUTBOUND_CLAIMABLE),
)
# failed rows whose error class is still to be found (a status webhook applied without a classifier)
OUTBOUND_UNCLASSIFIED = "status = 'failed' AND error_class IS NULL AND error_code IS NOT NULL"
Index(
    "ix_outbound_messages_unclassified",
    outbound_messages.c.id,
    sqlite_where=text(OUTBOUND_UNCLASSIFIED),
    postgresql_where=text(OUTBOUND_UNCLASSIFIED),
)
# outbound rows per (number, status, waiting reason — '' unless queued), one row per writer shard
# (PostgreSQL: the backend pid, so concurrent writers never share a counter row; SQLite: 0); the count is
# the sum over shards, and a shard's `n` may be negative.
outbound_counts = Table(
    "outbound_counts",
    metadata,
    Column("phone_number_id", String(64), primary_key=True),
    Column("status", String(16), primary_key=True),
    Column("waiting_reason", String(32), primary_key=True),
    Column("shard", Integer, primary_key=True),
    Column("n", BigInteger, nullable=False),
)
# outbound rows of each campaign per status, sharded as above
campaign_counts = Table(
    "campaign_counts",
    metadata,
    Column("campaign_id", BigInteger, primary_key=True),
    Column("status", String(16), primary_key=True),
    Column("shard", Integer, primary_key=True),
    Column("n", BigInteger, nullable=False),
)


# ---- revision 0007 (engine, timers, API lists) ----
# The timer scheduler's "what is due" (every 0.2 s): only pending timers, earliest first (the query writes
# `state = 'pending'` as a constant so that both planners can prove the partial WHERE). It replaces
# revision 0001's (state, fire_at) index, which held every timer ever fired or cancelled and which SQLite,
# without statistics, preferred even for the id lookups of `mark_fired`: 0007 drops it.
TIMERS_PENDING = "state = 'pending'"
Index(
    "ix_timers_pending_fire_at",
    timers.c.fire_at,
    timers.c.id,
    sqlite_where=text(TIMERS_PENDING),
    postgresql_where=text(TIMERS_PENDING),
)
# settled (fired / cancelled) timers, oldest first: the scheduler's sweep deletes them in id order
TIMERS_SETTLED = "state IN ('fired', 'cancelled')"
Index(
    "ix_timers_settled_id",
    timers.c.id,
    sqlite_where=text(TIMERS_SETTLED),
    postgresql_where=text(TIMERS_SETTLED),
)
# sessions lists (`GET /sessions?state=`, the handoff queue; `?flow_id=`), newest first
Index("ix_sessions_state_id", sessions.c.state, sessions.c.id)
Index("ix_sessions_flow_id_state_id", sessions.c.flow_id, sessions.c.state, sessions.c.id)
# `GET /contacts?phone_number_id=`: the number's contacts (aliases of merged contacts left out) in id order
CONTACTS_LISTED = "merged_into IS NULL"
Index(
    "ix_contacts_listed_phone_number_id_id",
    contacts.c.phone_number_id,
    contacts.c.id,
    sqlite_where=text(CONTACTS_LISTED),
    postgresql_where=text(CONTACTS_LISTED),
)

# ---- revision 0008 (consent) ----
# When the contact's current opt-out was recorded (NULL while opted in): the outbox's consent rule lets a
# message reach an opted-out contact only in a conversation the contact started after it (`outbox/consent.py`).
contacts.append_column(Column("opted_out_at", UTCDateTime, nullable=True))
# Every change of a contact's consent: what (opt_out / opt_in), how (keyword, api), who, when.
CONSENT_ACTIONS = ("opt_out", "opt_in")
consent_events = Table(
    "consent_events",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("phone_number_id", String(64), nullable=False),
    Column("contact_id", BigInteger, nullable=False),
    Column("contact_key", String(128), nullable=False),
    Column("action", String(16), nullable=False),
    Column("source", String(32), nullable=False),  # keyword (the contact wrote STOP / START), api
    Column("actor", String(128), nullable=True),  # "contact", or the API key's fingerprint and the operator
    Column("detail", Text, nullable=True),  # the keyword, or the operator's note
    Column("at", UTCDateTime, nullable=False, default=utcnow),
    CheckConstraint(_in("action", CONSENT_ACTIONS), name="action"),
    Index("ix_consent_events_contact_id_id", "contact_id", "id"),
)
# rows refused because their contact opted out, per campaign: a campaign's progress counts them as skipped
OPTED_OUT_CLASS = "opted_out"  # the error class of a row the outbox's consent rule refused
OUTBOUND_OPTED_OUT = f"error_class = '{OPTED_OUT_CLASS}'"
Index(
    "ix_outbound_messages_opted_out",
    outbound_messages.c.campaign_id,
    sqlite_where=text(OUTBOUND_OPTED_OUT),
    postgresql_where=text(OUTBOUND_OPTED_OUT),
)

# ---- revision 0009 (scoped statuses) ----
# The number a status webhook named: a status is applied only to a message of that number (`store/statuses.py`).
status_events.append_column(Column("phone_number_id", String(64), nullable=True))

# ---- revision 0010 (sends in flight) ----
# leased rows per recipient: the claim leaves a head alone while an earlier row of its recipient is in flight
Index(
    "ix_outbound_messages_in_flight",
    outbound_messages.c.phone_number_id,
    outbound_messages.c.contact_key,
    outbound_messages.c.id,
    sqlite_where=text("claimed_until IS NOT NULL"),
    postgresql_where=text("claimed_until IS NOT NULL"),
)

# ---- revision 0012 (the send fence) ----
# When the holder of the lease started to send the row (`OutboxRepository.mark_sending`); NULL: not tried under
# this lease, so an expired lease releases it at once instead of treating its outcome as unknown.
outbound_messages.append_column(Column("sending_since", UTCDateTime, nullable=True))
