"""Outbox dispatcher: waiting reason / throttle count / fallback flag on outbound rows; campaigns; templates.

Revision ID: 0002
Revises: 0001
Create Date: 2026-01-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from waflow.store.types import UTCDateTime

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None

# Frozen copies of the column types of this revision.
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TS = UTCDateTime()
FALSE = sa.text("false")


def upgrade() -> None:
    with op.batch_alter_table("outbound_messages") as batch:
        batch.add_column(sa.Column("waiting_reason", sa.String(32), nullable=True))
        batch.add_column(sa.Column("throttles", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("fallback_used", sa.Boolean(), nullable=False, server_default=FALSE))
    op.create_index(
        "ix_outbound_messages_claimed_until",
        "outbound_messages",
        ["claimed_until"],
        sqlite_where=sa.text("claimed_until IS NOT NULL"),
        postgresql_where=sa.text("claimed_until IS NOT NULL"),
    )
    op.create_table(
        "campaigns",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("phone_number_id", sa.String(64), nullable=False),
        sa.Column("template", sa.String(512), nullable=False),
        sa.Column("language", sa.String(32), nullable=False),
        sa.Column("params", JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False, server_default="running"),
        sa.Column("total", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("finished_at", TS, nullable=True),
        sa.CheckConstraint(
            "status IN ('running', 'paused', 'done', 'cancelled')", name="ck_campaigns_status"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_campaigns"),
    )
    op.create_index("ix_campaigns_status", "campaigns", ["status"])
    op.create_table(
        "templates",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("waba_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(512), nullable=False),
        sa.Column("language", sa.String(32), nullable=False),
        sa.Column("template_id", sa.String(64), nullable=True),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("category", sa.String(32), nullable=True),
        sa.Column("parameter_format", sa.String(16), nullable=True),
        sa.Column("components", JSON, nullable=False),
        sa.Column("synced_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_templates"),
    )
    op.create_index(
        "uq_templates_waba_id_name_language", "templates", ["waba_id", "name", "language"], unique=True
    )


def downgrade() -> None:
    op.drop_table("templates")
    op.drop_table("campaigns")
    op.drop_index("ix_outbound_messages_claimed_until", table_name="outbound_messages")
    with op.batch_alter_table("outbound_messages") as batch:
        batch.drop_column("fallback_used")
        batch.drop_column("throttles")
        batch.drop_column("waiting_reason")
