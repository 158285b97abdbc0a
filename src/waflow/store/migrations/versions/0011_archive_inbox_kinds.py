"""No inbox kind pending forever: events nothing consumes are done.

Since this revision the webhook writer marks account updates, webhook-level errors (kind `other` / `error`) and
template status updates (applied to `templates` in the same transaction) done as it stores them. Rows stored
pending before it are marked done here (`processed_at` = their arrival), so the open-events indexes hold only
work. Engine events (kind `other`, dedup key `engine:...`) are work, and stay as they are.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04
"""

from __future__ import annotations

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.execute(
        "UPDATE inbound_events SET state = 'done', processed_at = received_at "
        "WHERE state IN ('pending', 'failed') AND (kind IN ('template_status', 'error') "
        "OR (kind = 'other' AND dedup_key NOT LIKE 'engine:%'))"
    )


def downgrade() -> None:
    pass  # the rows were never going to be processed: nothing to restore
