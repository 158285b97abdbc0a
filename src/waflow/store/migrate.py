"""Alembic, run from code: the migrations ship inside the package, no `alembic.ini` on disk.

`alembic_config()` builds the Config; `run_upgrade` / `current_revision` run on a sync connection
(call them through `AsyncConnection.run_sync`). The migration environment (`migrations/env.py`)
uses the connection handed over in `config.attributes["connection"]`.
"""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

SCRIPT_LOCATION = "waflow.store:migrations"
VERSION_TABLE = "waflow_schema_version"
# pg_advisory_xact_lock key: upgrades from several processes at once run one after the other.
UPGRADE_LOCK_KEY = 0x7761666C  # "wafl"


def alembic_config(url: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:  # pragma: no cover - the package always ships revisions
        raise RuntimeError("no migrations found in waflow.store.migrations")
    return head


def run_upgrade(connection: Connection, revision: str = "head") -> None:
    """Upgrade the database on `connection` to `revision` (inside the caller's transaction)."""
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


def run_downgrade(connection: Connection, revision: str) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.downgrade(config, revision)


def current_revision(connection: Connection) -> str | None:
    context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
    return context.get_current_revision()
