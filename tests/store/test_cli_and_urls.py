"""`waflow db upgrade` and URL handling."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from typer.testing import CliRunner

from waflow.cli import app
from waflow.store import Store, head_revision, normalize_url


def test_db_upgrade_command_on_a_fresh_file(tmp_path: Path) -> None:
    db = tmp_path / "sub" / "w.db"
    runner = CliRunner()
    first = runner.invoke(app, ["db", "upgrade", "--url", str(db)])
    assert first.exit_code == 0, first.output
    assert "empty database -> " + head_revision() in first.output
    second = runner.invoke(app, ["db", "upgrade", "--url", f"sqlite+aiosqlite:///{db}"])
    assert second.exit_code == 0 and "already at revision" in second.output
    current = runner.invoke(app, ["db", "current", "--url", str(db)])
    assert "up to date" in current.output

    async def revision() -> str | None:
        store = Store.open(str(db))
        try:
            return await store.revision()
        finally:
            await store.close()

    assert asyncio.run(revision()) == head_revision()


def test_db_upgrade_refuses_unknown_backends() -> None:
    result = CliRunner().invoke(app, ["db", "upgrade", "--url", "mysql://u@h/db"])
    assert result.exit_code != 0 and "unsupported database" in result.output


def test_normalize_url() -> None:
    assert normalize_url("data/w.db").drivername == "sqlite+aiosqlite"
    assert normalize_url("sqlite:///w.db").drivername == "sqlite+aiosqlite"
    assert normalize_url("postgres://u:p@h/db").drivername == "postgresql+asyncpg"
    assert normalize_url("postgresql://u@h/db").drivername == "postgresql+asyncpg"
    for bad in ("sqlite://", "sqlite:///:memory:", "postgresql+psycopg://h/db", "mysql://h/db"):
        with pytest.raises(ValueError):
            normalize_url(bad)


def _modes(folder: Path, prefix: str) -> dict[str, int]:
    import stat

    return {f.name: stat.S_IMODE(f.stat().st_mode) for f in folder.glob(prefix + "*")}


async def test_a_new_sqlite_file_is_private(tmp_path: Path) -> None:
    """The database holds conversations and phone numbers: owner-only, and so are SQLite's -wal / -shm files."""
    from waflow.store import Store

    store = Store.open(f"sqlite+aiosqlite:///{tmp_path / 'private.db'}")
    try:
        await store.upgrade()
        async with store.begin() as conn:  # a write: the -wal and -shm files exist now
            await store.dead_letters.add(conn, reason="x", body=b"{", headers={})
        modes = _modes(tmp_path, "private.db")
    finally:
        await store.close()
    assert set(modes) >= {"private.db", "private.db-wal", "private.db-shm"}, modes
    assert set(modes.values()) == {0o600}, {name: oct(m) for name, m in modes.items()}
