"""The send fence: when a dispatcher started to send a row it holds.

Before this revision every row whose lease expired counted as maybe sent: after a `kill -9` the rows a dispatcher
had claimed but never tried waited the lease and then the unknown-outcome grace (about 2 minutes). A dispatcher
now marks a row (`sending_since`, only while its lease is still its own) right before the request; a row whose
lease expires without the mark is released at once, due again, and only marked rows follow the unknown-outcome
rule. Every outcome clears the mark with the lease.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from waflow.store.types import UTCDateTime

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("outbound_messages") as batch:
        batch.add_column(sa.Column("sending_since", UTCDateTime(), nullable=True))
    # rows leased when this runs were claimed under the old rule: maybe sent
    op.execute("UPDATE outbound_messages SET sending_since = claimed_until WHERE claimed_until IS NOT NULL")


def downgrade() -> None:
    # a plain DROP COLUMN (SQLite >= 3.35): a batch rebuild of the table would drop revision 0006's triggers
    op.execute("ALTER TABLE outbound_messages DROP COLUMN sending_since")
