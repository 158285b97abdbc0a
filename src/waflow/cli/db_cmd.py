"""`waflow db ...`: create and migrate the database (the work is `waflow.store.Store`)."""

from __future__ import annotations

import asyncio

import typer

from waflow.cli.app import app

db_app = typer.Typer(help="Create and migrate waflow's database.", no_args_is_help=True)
app.add_typer(db_app, name="db")

URL_HELP = (
    "Database URL (sqlite+aiosqlite:///path.db, postgresql+asyncpg://...) or a SQLite file path. "
    "Default: $WAFLOW_DATABASE_URL, else ./waflow.db."
)


def _url(url: str | None) -> str:
    from waflow.store import default_url

    return url or default_url()


@db_app.command("upgrade")
def upgrade(
    url: str | None = typer.Option(None, "--url", help=URL_HELP),
    revision: str = typer.Option("head", "--revision", help="Target revision."),
) -> None:
    """Bring the schema to the newest revision (an empty database included)."""
    from waflow.store import Store, describe_url

    async def run() -> tuple[str | None, str | None]:
        store = Store.open(_url(url))
        try:
            before = await store.revision()
            await store.upgrade(revision)
            return before, await store.revision()
        finally:
            await store.close()

    try:
        before, after = asyncio.run(run())
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--url") from exc
    target = describe_url(_url(url))
    if before == after:
        typer.echo(f"{target}: already at revision {after}")
    else:
        typer.echo(f"{target}: upgraded {before or 'empty database'} -> {after}")


@db_app.command("current")
def current(url: str | None = typer.Option(None, "--url", help=URL_HELP)) -> None:
    """Print the database's schema revision and whether it is the newest."""
    from waflow.store import Store, describe_url, head_revision

    async def run() -> str | None:
        store = Store.open(_url(url))
        try:
            return await store.revision()
        finally:
            await store.close()

    try:
        revision = asyncio.run(run())
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--url") from exc
    head = head_revision()
    state = "up to date" if revision == head else f"behind (newest: {head}); run `waflow db upgrade`"
    typer.echo(f"{describe_url(_url(url))}: {revision or 'empty database'} — {state}")
