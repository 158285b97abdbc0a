"""Scoped statuses: the number a status webhook named, so it is applied only to that number's message.

A status is matched to an outbound message by the message id (wamid); since this revision also by number:
a status naming another number than the message's (signed by another app) is kept in the history but never
applied, also when it arrived before the send's response (held) and is adopted later. Older rows have NULL
and are judged as before.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("status_events") as batch:
        batch.add_column(sa.Column("phone_number_id", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("status_events") as batch:
        batch.drop_column("phone_number_id")
