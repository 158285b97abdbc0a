"""Initial schema: contacts, inbox, dead letters, outbox, send attempts, status events, sessions, timers.

Revision ID: 0001
Revises:
Create Date: 2026-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from waflow.store.types import UTCDateTime

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

# Frozen copies of the column types of this revision (later revisions must not change these).
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TS = UTCDateTime()
FALSE = sa.text("false")

OPEN_EVENT = sa.text("state IN ('pending', 'failed')")
QUEUED = sa.text("status = 'queued'")
STATUSES = "('queued', 'accepted', 'sent', 'delivered', 'read', 'played', 'failed')"


def _id() -> sa.Column[int]:
    return sa.Column("id", ID, primary_key=True, autoincrement=True)


def upgrade() -> None:
    op.create_table(
        "contacts",
        _id(),
        sa.Column("phone_number_id", sa.String(64), nullable=False),
        sa.Column("contact_key", sa.String(128), nullable=False),
        sa.Column("wa_id", sa.String(64), nullable=True),
        sa.Column("user_id", sa.String(128), nullable=True),
        sa.Column("profile_name", sa.String(256), nullable=True),
        sa.Column("last_inbound_at", TS, nullable=True),
        sa.Column("opted_out", sa.Boolean(), server_default=FALSE, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_contacts"),
    )
    op.create_index(
        "uq_contacts_phone_number_id_contact_key", "contacts", ["phone_number_id", "contact_key"], unique=True
    )
    op.create_index(
        "uq_contacts_phone_number_id_wa_id",
        "contacts",
        ["phone_number_id", "wa_id"],
        unique=True,
        sqlite_where=sa.text("wa_id IS NOT NULL"),
        postgresql_where=sa.text("wa_id IS NOT NULL"),
    )
    op.create_index(
        "uq_contacts_phone_number_id_user_id",
        "contacts",
        ["phone_number_id", "user_id"],
        unique=True,
        sqlite_where=sa.text("user_id IS NOT NULL"),
        postgresql_where=sa.text("user_id IS NOT NULL"),
    )

    op.create_table(
        "inbound_events",
        _id(),
        sa.Column("dedup_key", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("provider", sa.String(32), nullable=False),
        sa.Column("phone_number_id", sa.String(64), nullable=True),
        sa.Column("contact_key", sa.String(128), nullable=True),
        sa.Column("provider_message_id", sa.String(255), nullable=True),
        sa.Column("payload", JSON, nullable=False),
        sa.Column("received_at", TS, nullable=False),
        sa.Column("state", sa.String(16), server_default="pending", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("processed_at", TS, nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "kind IN ('message', 'status', 'template_status', 'error', 'other')", name="ck_inbound_events_kind"
        ),
        sa.CheckConstraint("state IN ('pending', 'done', 'failed', 'dead')", name="ck_inbound_events_state"),
        sa.PrimaryKeyConstraint("id", name="pk_inbound_events"),
    )
    op.create_index("uq_inbound_events_dedup_key", "inbound_events", ["dedup_key"], unique=True)
    op.create_index(
        "ix_inbound_events_open_by_contact",
        "inbound_events",
        ["phone_number_id", "contact_key", "id"],
        sqlite_where=OPEN_EVENT,
        postgresql_where=OPEN_EVENT,
    )
    op.create_index(
        "ix_inbound_events_open_by_kind",
        "inbound_events",
        ["kind", "id"],
        sqlite_where=OPEN_EVENT,
        postgresql_where=OPEN_EVENT,
    )

    op.create_table(
        "dead_letters",
        _id(),
        sa.Column("received_at", TS, nullable=False),
        sa.Column("phone_number_id", sa.String(64), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("headers", JSON, nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_dead_letters"),
    )
    op.create_index("ix_dead_letters_received_at", "dead_letters", ["received_at"])

    op.create_table(
        "outbound_messages",
        _id(),
        sa.Column("phone_number_id", sa.String(64), nullable=False),
        sa.Column("contact_key", sa.String(128), nullable=False),
        sa.Column("to_number", sa.String(64), nullable=True),
        sa.Column("recipient_user_id", sa.String(128), nullable=True),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("content", JSON, nullable=False),
        sa.Column("reply_to", sa.String(255), nullable=True),
        sa.Column("status", sa.String(16), server_default="queued", nullable=False),
        sa.Column("provider_message_id", sa.String(255), nullable=True),
        sa.Column("business_initiated", sa.Boolean(), server_default=FALSE, nullable=False),
        sa.Column("fallback_template", JSON, nullable=True),
        sa.Column("campaign_id", sa.BigInteger(), nullable=True),
        sa.Column("session_id", sa.BigInteger(), nullable=True),
        sa.Column("node_id", sa.String(128), nullable=True),
        sa.Column("due_at", TS, nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("claimed_by", sa.String(128), nullable=True),
        sa.Column("claimed_until", TS, nullable=True),
        sa.Column("outcome_unknown_since", TS, nullable=True),
        sa.Column("error_code", sa.Integer(), nullable=True),
        sa.Column("error_class", sa.String(32), nullable=True),
        sa.Column("error_text", sa.Text(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("accepted_at", TS, nullable=True),
        sa.Column("sent_at", TS, nullable=True),
        sa.Column("delivered_at", TS, nullable=True),
        sa.Column("read_at", TS, nullable=True),
        sa.Column("played_at", TS, nullable=True),
        sa.Column("failed_at", TS, nullable=True),
        sa.CheckConstraint(f"status IN {STATUSES}", name="ck_outbound_messages_status"),
        sa.CheckConstraint(
            "to_number IS NOT NULL OR recipient_user_id IS NOT NULL", name="ck_outbound_messages_addressed"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_outbound_messages"),
    )
    op.create_index(
        "uq_outbound_messages_provider_message_id",
        "outbound_messages",
        ["provider_message_id"],
        unique=True,
        sqlite_where=sa.text("provider_message_id IS NOT NULL"),
        postgresql_where=sa.text("provider_message_id IS NOT NULL"),
    )
    op.create_index(
        "ix_outbound_messages_queued_by_recipient",
        "outbound_messages",
        ["phone_number_id", "contact_key", "id"],
        sqlite_where=QUEUED,
        postgresql_where=QUEUED,
    )
    op.create_index(
        "ix_outbound_messages_queued_due", "outbound_messages", ["due_at"], sqlite_where=QUEUED, postgresql_where=QUEUED
    )
    op.create_index("ix_outbound_messages_session_id", "outbound_messages", ["session_id"])
    op.create_index("ix_outbound_messages_campaign_id", "outbound_messages", ["campaign_id"])

    op.create_table(
        "send_attempts",
        _id(),
        sa.Column("outbound_id", sa.BigInteger(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("finished_at", TS, nullable=True),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("http_status", sa.Integer(), nullable=True),
        sa.Column("error_code", sa.Integer(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.CheckConstraint("outcome IN ('accepted', 'error', 'unknown')", name="ck_send_attempts_outcome"),
        sa.ForeignKeyConstraint(
            ["outbound_id"],
            ["outbound_messages.id"],
            name="fk_send_attempts_outbound_id_outbound_messages",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_send_attempts"),
    )
    op.create_index("ix_send_attempts_outbound_id_attempt", "send_attempts", ["outbound_id", "attempt"])

    op.create_table(
        "status_events",
        _id(),
        sa.Column("outbound_id", sa.BigInteger(), nullable=True),
        sa.Column("provider_message_id", sa.String(255), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("occurred_at", TS, nullable=False),
        sa.Column("recorded_at", TS, nullable=False),
        sa.Column("error_code", sa.Integer(), nullable=True),
        sa.Column("error_title", sa.Text(), nullable=True),
        sa.Column("error_details", sa.Text(), nullable=True),
        sa.Column("callback_data", sa.String(512), nullable=True),
        sa.Column("raw", JSON, nullable=True),
        sa.Column("applied", sa.Boolean(), server_default=FALSE, nullable=False),
        sa.Column("advanced", sa.Boolean(), server_default=FALSE, nullable=False),
        sa.CheckConstraint(f"status IN {STATUSES}", name="ck_status_events_status"),
        sa.ForeignKeyConstraint(
            ["outbound_id"],
            ["outbound_messages.id"],
            name="fk_status_events_outbound_id_outbound_messages",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_status_events"),
    )
    op.create_index("ix_status_events_outbound_id_id", "status_events", ["outbound_id", "id"])
    op.create_index(
        "ix_status_events_held",
        "status_events",
        ["provider_message_id"],
        sqlite_where=sa.text("outbound_id IS NULL"),
        postgresql_where=sa.text("outbound_id IS NULL"),
    )

    op.create_table(
        "sessions",
        _id(),
        sa.Column("contact_id", sa.BigInteger(), nullable=False),
        sa.Column("flow_id", sa.String(128), nullable=False),
        sa.Column("flow_version", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), server_default="running", nullable=False),
        sa.Column("current_node", sa.String(128), nullable=True),
        sa.Column("vars", JSON, nullable=False),
        sa.Column("waiting_for", sa.String(64), nullable=True),
        sa.Column("step_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("ended_at", TS, nullable=True),
        sa.Column("end_reason", sa.Text(), nullable=True),
        sa.CheckConstraint("state IN ('running', 'waiting', 'handoff', 'ended')", name="ck_sessions_state"),
        sa.ForeignKeyConstraint(
            ["contact_id"], ["contacts.id"], name="fk_sessions_contact_id_contacts", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_sessions"),
    )
    op.create_index("ix_sessions_contact_id_id", "sessions", ["contact_id", "id"])
    op.create_index(
        "uq_sessions_active_contact_id",
        "sessions",
        ["contact_id"],
        unique=True,
        sqlite_where=sa.text("state != 'ended'"),
        postgresql_where=sa.text("state != 'ended'"),
    )

    op.create_table(
        "timers",
        _id(),
        sa.Column("session_id", sa.BigInteger(), nullable=True),
        sa.Column("phone_number_id", sa.String(64), nullable=False),
        sa.Column("contact_key", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("fire_at", TS, nullable=False),
        sa.Column("payload", JSON, nullable=False),
        sa.Column("state", sa.String(16), server_default="pending", nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("fired_at", TS, nullable=True),
        sa.CheckConstraint("state IN ('pending', 'fired', 'cancelled')", name="ck_timers_state"),
        sa.ForeignKeyConstraint(
            ["session_id"], ["sessions.id"], name="fk_timers_session_id_sessions", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_timers"),
    )
    op.create_index("ix_timers_state_fire_at", "timers", ["state", "fire_at"])
    op.create_index("ix_timers_session_id", "timers", ["session_id"])


def downgrade() -> None:
    for table in (
        "timers",
        "sessions",
        "status_events",
        "send_attempts",
        "outbound_messages",
        "dead_letters",
        "inbound_events",
        "contacts",
    ):
        op.drop_table(table)
