"""Engine, timers and API lists at scale: indexes for the failure probe, timers, sessions and contact lists.

- timers: the scheduler's due query reads a partial index of the pending timers only (replacing the
  (state, fire_at) index of 0001); its sweep of settled (fired / cancelled) timers reads a partial index
  of those, in id order;
- sessions: lists by state (the handoff queue) and by flow, newest first;
- contacts: one number's contacts in id order, without the aliases of merged contacts.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | None = None
depends_on: str | None = None

TIMERS_PENDING = sa.text("state = 'pending'")
TIMERS_SETTLED = sa.text("state IN ('fired', 'cancelled')")
CONTACTS_LISTED = sa.text("merged_into IS NULL")


def upgrade() -> None:
    op.create_index(
        "ix_timers_pending_fire_at", "timers", ["fire_at", "id"],
        sqlite_where=TIMERS_PENDING, postgresql_where=TIMERS_PENDING,
    )  # fmt: skip
    op.drop_index("ix_timers_state_fire_at", table_name="timers")
    op.create_index(
        "ix_timers_settled_id", "timers", ["id"], sqlite_where=TIMERS_SETTLED, postgresql_where=TIMERS_SETTLED
    )
    op.create_index("ix_sessions_state_id", "sessions", ["state", "id"])
    op.create_index("ix_sessions_flow_id_state_id", "sessions", ["flow_id", "state", "id"])
    op.create_index(
        "ix_contacts_listed_phone_number_id_id", "contacts", ["phone_number_id", "id"],
        sqlite_where=CONTACTS_LISTED, postgresql_where=CONTACTS_LISTED,
    )  # fmt: skip


def downgrade() -> None:
    op.drop_index("ix_contacts_listed_phone_number_id_id", table_name="contacts")
    op.drop_index("ix_sessions_flow_id_state_id", table_name="sessions")
    op.drop_index("ix_sessions_state_id", table_name="sessions")
    op.drop_index("ix_timers_settled_id", table_name="timers")
    op.create_index("ix_timers_state_fire_at", "timers", ["state", "fire_at"])
    op.drop_index("ix_timers_pending_fire_at", table_name="timers")
