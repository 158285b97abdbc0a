"""Outbox at scale: counters instead of counted tables; a head marker for the claim; an index for the failure probe.

Every statement on a per-claim / per-tick / per-scrape path must cost what it returns, not what the outbox
holds (issue 12). Before this revision the dispatcher's claim, its one-second maintenance and `/metrics`
counted or walked `outbound_messages`. Now:

- `outbound_messages.queue_head` marks the lowest queued id of each (phone_number_id, contact_key) — the
  only row of a recipient the claim may take. The claim walks the partial index
  `ix_outbound_messages_claimable` (queued heads per number, campaign, due_at) and stops at its limit,
  instead of walking every due row and testing each for an earlier queued one;
- `outbound_counts` (rows per number, status and — while queued — waiting reason) and `campaign_counts`
  (rows per campaign and status) replace the GROUP BY counts of the maintenance tick, the campaign
  progress and `/metrics`;
- `ix_outbound_messages_unclassified` holds only the failed rows still missing their error class;
- revision 0001's `ix_outbound_messages_queued_due` (every queued row by due_at), read only by the old
  claim, is dropped: one index less to write per enqueued and sent row.

Why triggers, not delta updates in the repositories: the marker and the counters must be exact and change in
the same transaction as the rows, on every path that writes outbound rows or their status — the enqueues,
the recorder's batches, the status appliers (one of which writes with a raw sqlite3 executemany), the lease
recovery, a contact merge re-keying a queue (`store/contacts.py`), and any path written later. A trigger is
one definition per dialect that no code path can forget, and it costs one index lookup and one row write
per changed row (bench/outbox_dispatch.py's store overhead shows it). The claim's `UPDATE` sets none of the
watched columns, so claiming fires nothing.

PostgreSQL concurrency:
- a single counter row per key would be a row lock every writer queues on; each counter row carries a
  `shard`, the writing backend's pid (`pg_backend_pid()`), so concurrent transactions never touch the same
  counter row (two live backends never share a pid) and a count is the sum over its shards. Rows of
  backends that exited are folded into shard 0 by `OutboxRepository.fold_counters` (the maintenance tick),
  so the shards stay as many as the live connections. SQLite has one writer: shard 0 only.
- under READ COMMITTED two transactions could each miss the other's uncommitted rows (a new row misses
  the promotion of the row before it and stays unmarked forever). The head trigger makes the writers of one
  queue meet on a row lock of the queue's current head (see `PG_HEADS_FUNCTION`) — a row lock, not an
  advisory lock per recipient, which a large campaign would exhaust the shared lock table with. Writers of
  many rows (`enqueue_many`) share-lock those heads up front in id order, the order every other writer of
  outbound rows locks them in, so they cannot deadlock with the recorder.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None

# Frozen copies of this revision's definitions (the repositories' constants may change later).
QUEUED = sa.text("status = 'queued'")
CLAIMABLE = sa.text("status = 'queued' AND queue_head")
UNCLASSIFIED = sa.text("status = 'failed' AND error_class IS NULL AND error_code IS NOT NULL")
OM = "outbound_messages"


def _reason(row: str) -> str:
    """The counted waiting reason of a row: its reason while queued ('' when none), else ''."""
    return f"CASE WHEN {row}.status = 'queued' THEN coalesce({row}.waiting_reason, '') ELSE '' END"


# ---- SQLite: statement lists as trigger bodies (no procedural code), shard 0 ----


def _sqlite_count(row: str, delta: str) -> str:
    return (
        "INSERT INTO outbound_counts (phone_number_id, status, waiting_reason, shard, n) "
        f"VALUES ({row}.phone_number_id, {row}.status, {_reason(row)}, 0, {delta}) "
        f"ON CONFLICT (phone_number_id, status, waiting_reason, shard) DO UPDATE SET n = n + ({delta});"
    )


def _sqlite_campaign(row: str, delta: str) -> str:
    # INSERT ... SELECT with a WHERE: a SELECT-fed upsert needs one to parse, and it skips rows of no campaign
    # (the triggers' WHEN already leaves out rows that have none; an UPDATE may move a row out of one)
    return (
        "INSERT INTO campaign_counts (campaign_id, status, shard, n) "
        f"SELECT {row}.campaign_id, {row}.status, 0, {delta} WHERE {row}.campaign_id IS NOT NULL "
        f"ON CONFLICT (campaign_id, status, shard) DO UPDATE SET n = n + ({delta});"
    )


def _sqlite_promote(row: str) -> str:
    """The recipient's lowest queued row becomes (stays) its head: one lookup of the first index entry."""
    return (
        f"UPDATE {OM} SET queue_head = 1 WHERE id = (SELECT min(id) FROM {OM} "
        f"WHERE phone_number_id = {row}.phone_number_id AND contact_key = {row}.contact_key "
        "AND status = 'queued') AND NOT queue_head;"
    )


def _sqlite_recompute(row: str) -> str:
    """Every queued row of the recipient: head iff lowest (a queue that moved or gained a lower row; rare)."""
    first = (
        f"(SELECT min(id) FROM {OM} WHERE phone_number_id = {row}.phone_number_id "
        f"AND contact_key = {row}.contact_key AND status = 'queued')"
    )
    return (
        f"UPDATE {OM} SET queue_head = (id = {first}) WHERE phone_number_id = {row}.phone_number_id "
        f"AND contact_key = {row}.contact_key AND status = 'queued' AND queue_head <> (id = {first});"
    )


_KEY_CHANGED = (
    "(OLD.status IS NOT NEW.status OR OLD.phone_number_id IS NOT NEW.phone_number_id "
    "OR OLD.contact_key IS NOT NEW.contact_key)"
)
SQLITE_TRIGGERS = {
    # (a WHEN per trigger, not a statement that finds nothing to do: on the enqueue and record paths a trigger
    # statement that runs costs its preparation and a lookup, measured in bench/outbox_dispatch.py)
    "trg_outbound_counts_insert": f"AFTER INSERT ON {OM} BEGIN " + _sqlite_count("NEW", "1") + " END",
    "trg_campaign_counts_insert": f"AFTER INSERT ON {OM} WHEN NEW.campaign_id IS NOT NULL BEGIN "
    + _sqlite_campaign("NEW", "1")
    + " END",
    "trg_outbound_counts_update": f"AFTER UPDATE OF status, waiting_reason, phone_number_id ON {OM} "
    f"WHEN OLD.status IS NOT NEW.status OR OLD.phone_number_id IS NOT NEW.phone_number_id "
    f"OR {_reason('OLD')} IS NOT {_reason('NEW')} BEGIN "
    + _sqlite_count("OLD", "-1")
    + _sqlite_count("NEW", "1")
    + " END",
    "trg_campaign_counts_update": f"AFTER UPDATE OF status, campaign_id ON {OM} "
    "WHEN (OLD.campaign_id IS NOT NULL OR NEW.campaign_id IS NOT NULL) "
    "AND (OLD.status IS NOT NEW.status OR OLD.campaign_id IS NOT NEW.campaign_id) BEGIN "
    + _sqlite_campaign("OLD", "-1")
    + _sqlite_campaign("NEW", "1")
    + " END",
    "trg_outbound_counts_delete": f"AFTER DELETE ON {OM} BEGIN " + _sqlite_count("OLD", "-1") + " END",
    "trg_campaign_counts_delete": f"AFTER DELETE ON {OM} WHEN OLD.campaign_id IS NOT NULL BEGIN "
    + _sqlite_campaign("OLD", "-1")
    + " END",
    # a new queued row is the head when no earlier queued row of its recipient exists (one index probe)
    "trg_outbound_heads_insert": f"AFTER INSERT ON {OM} WHEN NEW.status = 'queued' BEGIN "
    f"UPDATE {OM} SET queue_head = 1 WHERE id = NEW.id AND NOT EXISTS (SELECT 1 FROM {OM} AS e "
    "WHERE e.phone_number_id = NEW.phone_number_id AND e.contact_key = NEW.contact_key "
    "AND e.status = 'queued' AND e.id < NEW.id); END",
    # a row left the queue (accepted, failed): the next one of its recipient is the head
    # (only the head's leaving promotes: a row behind it leaving changes no head)
    "trg_outbound_heads_leave": f"AFTER UPDATE OF status ON {OM} "
    "WHEN OLD.status = 'queued' AND NEW.status <> 'queued' AND OLD.queue_head BEGIN "
    + _sqlite_promote("OLD")
    + " END",
    # a row (re)joined a queue: back to queued, or re-keyed (a contact merge moves a queue to the survivor)
    "trg_outbound_heads_move": f"AFTER UPDATE OF status, phone_number_id, contact_key ON {OM} "
    f"WHEN NEW.status = 'queued' AND {_KEY_CHANGED} BEGIN "
    + _sqlite_recompute("NEW")
    + _sqlite_promote("OLD")
    + " END",
    "trg_outbound_heads_delete": f"AFTER DELETE ON {OM} WHEN OLD.status = 'queued' AND OLD.queue_head BEGIN "
    + _sqlite_promote("OLD")
    + " END",
}


# ---- PostgreSQL: plpgsql functions, shard = the backend's pid ----


def _pg_deltas(sources: str) -> str:
    """Add the rows of `sources` (`SELECT <row columns>, <+1 or -1> AS d FROM ...` parts joined by UNION ALL,
    each aliased `r`) to the counters: one upsert per counted key and statement, not one per row."""
    return (
        "INSERT INTO outbound_counts AS c (phone_number_id, status, waiting_reason, shard, n) "
        f"SELECT phone_number_id, status, reason, pg_backend_pid(), sum(d) FROM ({sources}) AS x "
        "GROUP BY phone_number_id, status, reason HAVING sum(d) <> 0 "
        "ON CONFLICT (phone_number_id, status, waiting_reason, shard) DO UPDATE SET n = c.n + EXCLUDED.n;\n"
        "    INSERT INTO campaign_counts AS c (campaign_id, status, shard, n) "
        f"SELECT campaign_id, status, pg_backend_pid(), sum(d) FROM ({sources}) AS x WHERE campaign_id IS NOT NULL "
        "GROUP BY campaign_id, status HAVING sum(d) <> 0 "
        "ON CONFLICT (campaign_id, status, shard) DO UPDATE SET n = c.n + EXCLUDED.n;"
    )


def _pg_rows(table: str, delta: str) -> str:
    return (
        f"SELECT r.phone_number_id, r.status, {_reason('r')} AS reason, r.campaign_id, {delta} AS d FROM {table} AS r"
    )


# Statement-level, over the statement's transition tables: a bulk insert of a 100k-recipient campaign adds to
# each counter row once. (A row-level trigger updated the same counter row once per row inside one
# transaction; PostgreSQL keeps every version of it until the transaction ends, so each update walked the
# ones before: 2k rows took 0.8 s, 20k rows 26 s.) An update that changes no counted key nets to 0 and
# writes nothing (HAVING).
PG_COUNTS_FUNCTION = f"""
CREATE FUNCTION waflow_outbound_counts() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        {_pg_deltas(_pg_rows("new_rows", "1"))}
    ELSIF TG_OP = 'DELETE' THEN
        {_pg_deltas(_pg_rows("old_rows", "-1"))}
    ELSE
        {_pg_deltas(_pg_rows("new_rows", "1") + " UNION ALL " + _pg_rows("old_rows", "-1"))}
    END IF;
    RETURN NULL;
END $$
"""


def _pg_share_head(row: str) -> str:
    """Share-lock the recipient's current head (its lowest queued row other than `row`), waiting for a writer
    that is taking it out of the queue: a row lock, held in the tuple, so a campaign of any size takes no
    room in the shared lock table (an advisory lock per recipient would: max_locks_per_transaction)."""
    return (
        f"PERFORM 1 FROM {OM} WHERE phone_number_id = {row}.phone_number_id AND contact_key = {row}.contact_key "
        f"AND status = 'queued' AND id <> {row}.id ORDER BY id LIMIT 1 FOR SHARE;"
    )


def _pg_first(row: str) -> str:
    return (
        f"(SELECT min(id) FROM {OM} WHERE phone_number_id = {row}.phone_number_id "
        f"AND contact_key = {row}.contact_key AND status = 'queued')"
    )


# A row leaving a queue is locked by the UPDATE that moves it; a new row share-locks the head before it looks
# (two enqueues of one recipient do not wait for each other). Each statement after that runs on a fresh
# snapshot (READ COMMITTED, a volatile function), so it sees what the head's writer committed: either the
# new row sees the head still queued (and the leaving writer, waiting for the share lock, then promotes it),
# or it sees the head gone and the next row already promoted. Two first rows of an empty queue written at
# once may both be marked: the claim re-checks the head on PostgreSQL, and the later one becomes claimable
# when the first leaves.
PG_HEADS_FUNCTION = f"""
CREATE FUNCTION waflow_outbound_heads() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    next_id bigint;
BEGIN
    IF TG_OP = 'INSERT' THEN
        {_pg_share_head('NEW')}
        UPDATE {OM} SET queue_head = true WHERE id = NEW.id AND NOT EXISTS (SELECT 1 FROM {OM} AS e
            WHERE e.phone_number_id = NEW.phone_number_id AND e.contact_key = NEW.contact_key
            AND e.status = 'queued' AND e.id < NEW.id);
        RETURN NULL;
    END IF;
    IF OLD.status = 'queued' AND OLD.queue_head THEN  -- the head left (or moved): promote the next row
        LOOP  -- until a row is promoted or none is left: the one found may be leaving at this moment
            SELECT min(id) INTO next_id FROM {OM} WHERE phone_number_id = OLD.phone_number_id
                AND contact_key = OLD.contact_key AND status = 'queued';
            EXIT WHEN next_id IS NULL;
            UPDATE {OM} SET queue_head = true WHERE id = next_id AND status = 'queued';
            EXIT WHEN FOUND;
        END LOOP;
    END IF;
    IF TG_OP = 'UPDATE' THEN
        IF NEW.status = 'queued' THEN  -- (re)joined a queue: recompute its heads
            {_pg_share_head('NEW')}
            UPDATE {OM} SET queue_head = (id = {_pg_first('NEW')}) WHERE phone_number_id = NEW.phone_number_id
                AND contact_key = NEW.contact_key AND status = 'queued' AND queue_head <> (id = {_pg_first('NEW')});
        END IF;
    END IF;
    RETURN NULL;
END $$
"""

_PG_KEY_CHANGED = (
    "(OLD.status IS DISTINCT FROM NEW.status OR OLD.phone_number_id IS DISTINCT FROM NEW.phone_number_id "
    "OR OLD.contact_key IS DISTINCT FROM NEW.contact_key)"
)
PG_TRIGGERS = {
    "trg_outbound_counts_insert": f"AFTER INSERT ON {OM} REFERENCING NEW TABLE AS new_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION waflow_outbound_counts()",
    "trg_outbound_counts_update": f"AFTER UPDATE ON {OM} REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION waflow_outbound_counts()",
    "trg_outbound_counts_delete": f"AFTER DELETE ON {OM} REFERENCING OLD TABLE AS old_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION waflow_outbound_counts()",
    "trg_outbound_heads_insert": f"AFTER INSERT ON {OM} FOR EACH ROW WHEN (NEW.status = 'queued') "
    "EXECUTE FUNCTION waflow_outbound_heads()",
    "trg_outbound_heads_update": f"AFTER UPDATE OF status, phone_number_id, contact_key ON {OM} FOR EACH ROW "
    f"WHEN ((OLD.status = 'queued' OR NEW.status = 'queued') AND {_PG_KEY_CHANGED}) "
    "EXECUTE FUNCTION waflow_outbound_heads()",
    "trg_outbound_heads_delete": f"AFTER DELETE ON {OM} FOR EACH ROW WHEN (OLD.status = 'queued') "
    "EXECUTE FUNCTION waflow_outbound_heads()",
}


def upgrade() -> None:
    with op.batch_alter_table(OM) as batch:
        batch.add_column(sa.Column("queue_head", sa.Boolean(), nullable=False, server_default=sa.text("false")))
    op.create_table(
        "outbound_counts",
        sa.Column("phone_number_id", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("waiting_reason", sa.String(32), nullable=False),
        sa.Column("shard", sa.Integer(), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("phone_number_id", "status", "waiting_reason", "shard", name="pk_outbound_counts"),
    )
    op.create_table(
        "campaign_counts",
        sa.Column("campaign_id", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("shard", sa.Integer(), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("campaign_id", "status", "shard", name="pk_campaign_counts"),
    )
    # What is there already: counted and marked once, here; the triggers keep it from now on.
    op.execute(
        f"UPDATE {OM} SET queue_head = true WHERE status = 'queued' AND NOT EXISTS (SELECT 1 FROM {OM} AS e "
        f"WHERE e.phone_number_id = {OM}.phone_number_id AND e.contact_key = {OM}.contact_key "
        f"AND e.status = 'queued' AND e.id < {OM}.id)"
    )
    op.execute(
        "INSERT INTO outbound_counts (phone_number_id, status, waiting_reason, shard, n) "
        f"SELECT phone_number_id, status, {_reason(OM)}, 0, count(*) FROM {OM} "
        f"GROUP BY phone_number_id, status, {_reason(OM)}"
    )
    op.execute(
        "INSERT INTO campaign_counts (campaign_id, status, shard, n) "
        f"SELECT campaign_id, status, 0, count(*) FROM {OM} WHERE campaign_id IS NOT NULL GROUP BY campaign_id, status"
    )
    op.create_index(
        "ix_outbound_messages_claimable", OM, ["phone_number_id", "campaign_id", "due_at", "id"],
        sqlite_where=CLAIMABLE, postgresql_where=CLAIMABLE,
    )  # fmt: skip
    op.create_index(
        "ix_outbound_messages_unclassified", OM, ["id"], sqlite_where=UNCLASSIFIED, postgresql_where=UNCLASSIFIED
    )
    op.drop_index("ix_outbound_messages_queued_due", table_name=OM)  # read by the old claim only
    if op.get_context().dialect.name == "postgresql":
        op.execute(PG_COUNTS_FUNCTION)
        op.execute(PG_HEADS_FUNCTION)
        for name, body in PG_TRIGGERS.items():
            op.execute(f"CREATE TRIGGER {name} {body}")
    else:
        for name, body in SQLITE_TRIGGERS.items():
            op.execute(f"CREATE TRIGGER {name} {body}")


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        for name in PG_TRIGGERS:
            op.execute(f"DROP TRIGGER {name} ON {OM}")
        op.execute("DROP FUNCTION waflow_outbound_heads()")
        op.execute("DROP FUNCTION waflow_outbound_counts()")
    else:  # before the batch below recreates the table (which would drop them with it)
        for name in SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER {name}")
    op.create_index(
        "ix_outbound_messages_queued_due", OM, ["due_at"], sqlite_where=QUEUED, postgresql_where=QUEUED
    )
    op.drop_index("ix_outbound_messages_unclassified", table_name=OM)
    op.drop_index("ix_outbound_messages_claimable", table_name=OM)
    op.drop_table("campaign_counts")
    op.drop_table("outbound_counts")
    with op.batch_alter_table(OM) as batch:
        batch.drop_column("queue_head")
