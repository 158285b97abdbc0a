"""Flow engine: deployed flow versions; session runtime state, expiry and errors; delivery-failure acks.

Revision ID: 0003
Revises: 0002
Create Date: 2026-01-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from waflow.store.types import UTCDateTime

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None

# Frozen copies of the column types of this revision.
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TS = UTCDateTime()
FALSE = sa.text("false")

ENGINE_OPEN = sa.text("state IN ('pending', 'failed') AND (kind = 'message' OR dedup_key LIKE 'engine:%')")
FAILED_UNSEEN = sa.text("status = 'failed' AND session_id IS NOT NULL AND engine_seen_at IS NULL")


def upgrade() -> None:
    op.create_table(
        "flow_versions",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("flow_id", sa.String(128), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("definition", JSON, nullable=False),
        sa.Column("deployed_at", TS, nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False, server_default=FALSE),
        sa.PrimaryKeyConstraint("id", name="pk_flow_versions"),
    )
    op.create_index("uq_flow_versions_flow_id_version", "flow_versions", ["flow_id", "version"], unique=True)
    op.create_index(
        "uq_flow_versions_flow_id_content_hash", "flow_versions", ["flow_id", "content_hash"], unique=True
    )
    op.create_index(
        "uq_flow_versions_active_flow_id",
        "flow_versions",
        ["flow_id"],
        unique=True,
        sqlite_where=sa.text("active"),
        postgresql_where=sa.text("active"),
    )
    with op.batch_alter_table("sessions") as batch:
        batch.add_column(sa.Column("runtime", JSON, nullable=True))
        batch.add_column(sa.Column("last_error", sa.Text(), nullable=True))
        batch.add_column(sa.Column("expires_at", TS, nullable=True))
    op.create_index(
        "ix_sessions_expires_at",
        "sessions",
        ["expires_at"],
        sqlite_where=sa.text("state IN ('waiting', 'handoff')"),
        postgresql_where=sa.text("state IN ('waiting', 'handoff')"),
    )
    op.create_index(
        "ix_sessions_running_updated_at",
        "sessions",
        ["updated_at"],
        sqlite_where=sa.text("state = 'running'"),
        postgresql_where=sa.text("state = 'running'"),
    )
    with op.batch_alter_table("outbound_messages") as batch:
        batch.add_column(sa.Column("engine_seen_at", TS, nullable=True))
    op.create_index(
        "ix_outbound_messages_failed_unseen",
        "outbound_messages",
        ["id"],
        sqlite_where=FAILED_UNSEEN,
        postgresql_where=FAILED_UNSEEN,
    )
    op.create_index(
        "ix_inbound_events_engine_open", "inbound_events", ["id"],
        sqlite_where=ENGINE_OPEN, postgresql_where=ENGINE_OPEN,
    )


def downgrade() -> None:
    op.drop_index("ix_inbound_events_engine_open", table_name="inbound_events")
    op.drop_index("ix_outbound_messages_failed_unseen", table_name="outbound_messages")
    with op.batch_alter_table("outbound_messages") as batch:
        batch.drop_column("engine_seen_at")
    op.drop_index("ix_sessions_running_updated_at", table_name="sessions")
    op.drop_index("ix_sessions_expires_at", table_name="sessions")
    with op.batch_alter_table("sessions") as batch:
        batch.drop_column("expires_at")
        batch.drop_column("last_error")
        batch.drop_column("runtime")
    op.drop_table("flow_versions")
