"""Dead letters: one row per distinct body, redeliveries counted; rejected fragments of partial bodies.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from __future__ import annotations

import hashlib
from datetime import datetime

import sqlalchemy as sa
from alembic import op

from waflow.store.types import UTCDateTime

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None

# Frozen copies of the column types of this revision.
TS = UTCDateTime()

_BACKFILL_CHUNK = 500

# Lightweight table views of this revision, for the backfill (never the live `tables.py` objects).
_letters = sa.table(
    "dead_letters",
    sa.column("id", sa.BigInteger()),
    sa.column("received_at", TS),
    sa.column("body", sa.LargeBinary()),
    sa.column("body_sha256", sa.String(64)),
    sa.column("copies", sa.Integer()),
    sa.column("last_received_at", TS),
)


def _backfill() -> None:
    """Hash the rows already stored. The first row of each distinct body takes the hash and counts
    the later identical rows as copies; those keep a NULL hash (the unique index allows any number
    of NULLs) so that no row, with its own headers and time, is deleted by the upgrade."""
    bind = op.get_bind()
    first: dict[str, tuple[int, int, datetime]] = {}  # sha256 → (id, copies, last received)
    after = 0
    while True:
        rows = bind.execute(
            sa.select(_letters.c.id, _letters.c.received_at, _letters.c.body)
            .where(_letters.c.id > after)
            .order_by(_letters.c.id)
            .limit(_BACKFILL_CHUNK)
        ).all()
        if not rows:
            break
        for row_id, received_at, body in rows:
            digest = hashlib.sha256(bytes(body)).hexdigest()
            seen = first.get(digest)
            if seen is None:
                first[digest] = (row_id, 1, received_at)
            else:
                first[digest] = (seen[0], seen[1] + 1, max(seen[2], received_at))
        after = rows[-1][0]
    for digest, (row_id, copies, last) in first.items():
        bind.execute(
            _letters.update()
            .where(_letters.c.id == row_id)
            .values(body_sha256=digest, copies=copies, last_received_at=last)
        )


def upgrade() -> None:
    with op.batch_alter_table("dead_letters") as batch:
        batch.add_column(sa.Column("body_sha256", sa.String(64), nullable=True))
        batch.add_column(sa.Column("place", sa.Text(), nullable=True))
        batch.add_column(sa.Column("copies", sa.Integer(), nullable=False, server_default="1"))
        batch.add_column(sa.Column("last_received_at", TS, nullable=True))
    op.execute(_letters.update().values(last_received_at=_letters.c.received_at))
    _backfill()
    with op.batch_alter_table("dead_letters") as batch:
        batch.alter_column("last_received_at", existing_type=TS, nullable=False)
    op.create_index("uq_dead_letters_body_sha256", "dead_letters", ["body_sha256"], unique=True)


def downgrade() -> None:
    # Counted redeliveries and fragment places are dropped; every stored row stays.
    op.drop_index("uq_dead_letters_body_sha256", table_name="dead_letters")
    with op.batch_alter_table("dead_letters") as batch:
        batch.drop_column("last_received_at")
        batch.drop_column("copies")
        batch.drop_column("place")
        batch.drop_column("body_sha256")
