"""Contact identity: aliases of merged contacts; per-contact history indexes (timelines, merges).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("contacts") as batch:
        batch.add_column(sa.Column("merged_into", sa.BigInteger(), nullable=True))
    op.create_index(
        "ix_contacts_merged_into",
        "contacts",
        ["merged_into"],
        sqlite_where=sa.text("merged_into IS NOT NULL"),
        postgresql_where=sa.text("merged_into IS NOT NULL"),
    )
    op.create_index(
        "ix_inbound_events_phone_number_id_contact_key_id",
        "inbound_events",
        ["phone_number_id", "contact_key", "id"],
    )
    op.create_index(
        "ix_outbound_messages_phone_number_id_contact_key_id",
        "outbound_messages",
        ["phone_number_id", "contact_key", "id"],
    )


def downgrade() -> None:
    op.drop_index("ix_outbound_messages_phone_number_id_contact_key_id", table_name="outbound_messages")
    op.drop_index("ix_inbound_events_phone_number_id_contact_key_id", table_name="inbound_events")
    op.drop_index("ix_contacts_merged_into", table_name="contacts")
    with op.batch_alter_table("contacts") as batch:
        batch.drop_column("merged_into")
