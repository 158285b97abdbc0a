"""Sends in flight per recipient: the claim waits for an earlier leased row of the same recipient.

A resend after an unknown outcome can be settled by a late status webhook of the first send while the resend's
HTTP call is still running: the row leaves `queued`, the recipient's next row becomes the head, and before this
revision it could be claimed and reach Meta before the resend did. `claim_due` now leaves a head alone while an
earlier row of its recipient is leased (claimed_until in the future); this partial index holds only leased
rows, so the probe is one short range per claimed head.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | None = None
depends_on: str | None = None

LEASED = sa.text("claimed_until IS NOT NULL")


def upgrade() -> None:
    op.create_index(
        "ix_outbound_messages_in_flight", "outbound_messages", ["phone_number_id", "contact_key", "id"],
        sqlite_where=LEASED, postgresql_where=LEASED,
    )  # fmt: skip


def downgrade() -> None:
    op.drop_index("ix_outbound_messages_in_flight", table_name="outbound_messages")
