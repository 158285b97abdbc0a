"""Consent: when a contact opted out, the history of opt-outs and opt-ins, and campaign rows refused for it.

- contacts.opted_out_at: when the current opt-out was recorded (NULL while opted in). The outbox's consent
  rule (`waflow.outbox.consent`) lets a message reach an opted-out contact only inside a conversation the
  contact started after this instant. Contacts opted out before this revision get their `updated_at`: no
  later than the opt-out was recorded, so nothing the contact wrote before it counts as a new conversation;
- consent_events: every change of a contact's consent (opt_out / opt_in), with how (`source`: keyword,
  api) and who (`actor`: the contact, or the API key's fingerprint and the operator's name) — read per
  contact, newest first;
- ix_outbound_messages_opted_out: the rows refused because their contact opted out, per campaign (a
  campaign's progress counts them as skipped: an index range of exactly those rows).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from waflow.store.types import UTCDateTime

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | None = None
depends_on: str | None = None

OPTED_OUT_ROWS = sa.text("error_class = 'opted_out'")


def upgrade() -> None:
    with op.batch_alter_table("contacts") as batch:
        batch.add_column(sa.Column("opted_out_at", UTCDateTime(), nullable=True))
    op.execute("UPDATE contacts SET opted_out_at = updated_at WHERE opted_out")
    op.create_table(
        "consent_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("phone_number_id", sa.String(64), nullable=False),
        sa.Column("contact_id", sa.BigInteger(), nullable=False),
        sa.Column("contact_key", sa.String(128), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("actor", sa.String(128), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.CheckConstraint("action IN ('opt_out', 'opt_in')", name="ck_consent_events_action"),
        sa.PrimaryKeyConstraint("id", name="pk_consent_events"),
    )
    op.create_index("ix_consent_events_contact_id_id", "consent_events", ["contact_id", "id"])
    op.create_index(
        "ix_outbound_messages_opted_out", "outbound_messages", ["campaign_id"],
        sqlite_where=OPTED_OUT_ROWS, postgresql_where=OPTED_OUT_ROWS,
    )  # fmt: skip


def downgrade() -> None:
    op.drop_index("ix_outbound_messages_opted_out", table_name="outbound_messages")
    op.drop_index("ix_consent_events_contact_id_id", table_name="consent_events")
    op.drop_table("consent_events")
    with op.batch_alter_table("contacts") as batch:
        batch.drop_column("opted_out_at")
