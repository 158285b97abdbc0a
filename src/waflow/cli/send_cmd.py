"""`waflow send ...`: one-off messages and bulk campaigns through the outbox (the work is `waflow.outbox`).

By default the command also runs a dispatcher until its messages are settled (`--no-dispatch`: only
enqueue and watch, when `waflow serve` / `waflow worker` dispatches). The dispatcher reads
`WHATSAPP_PHONE_NUMBER_ID`, `WHATSAPP_WABA_ID`, `WHATSAPP_ACCESS_TOKEN`, `WHATSAPP_BASE_URL` and
`WAFLOW_REDIS_URL` (the shared rate limiter).
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import typer

from waflow.cli.app import app

send_app = typer.Typer(help="Send messages through the outbox: one-off texts and bulk template campaigns.",
                       no_args_is_help=True)
app.add_typer(send_app, name="send")
campaign_app = typer.Typer(help="Pause, resume or inspect a campaign.", no_args_is_help=True)
send_app.add_typer(campaign_app, name="campaign")

DB_HELP = "Database URL or SQLite path. Default: $WAFLOW_DATABASE_URL, else ./waflow.db."


def _phone_number_id(value: str | None) -> str:
    pnid = value or os.environ.get("WHATSAPP_PHONE_NUMBER_ID")
    if not pnid:
        raise typer.BadParameter(
            "give --phone-number-id or set WHATSAPP_PHONE_NUMBER_ID", param_hint="--phone-number-id"
        )
    return pnid


@contextlib.asynccontextmanager
async def _dispatching(store: Any, enabled: bool, rate: float) -> AsyncIterator[None]:
    if not enabled:
        yield
        return
    from waflow.cloudapi import CloudAPIClient
    from waflow.outbox import DispatcherConfig, OutboxDispatcher, make_limiters

    client = CloudAPIClient.from_env()
    limiters = make_limiters(os.environ.get("WAFLOW_REDIS_URL"))
    try:
        dispatcher = OutboxDispatcher(store, client, limiters=limiters, config=DispatcherConfig(rate_per_s=rate))
        async with dispatcher.running():
            yield
    finally:
        await client.aclose()
        await limiters.aclose()


async def _with_store(db: str | None, work: Callable[[Any], Any]) -> Any:
    from waflow.store import Store, default_url

    store = Store.open(db or default_url())
    try:
        await store.upgrade()
        return await work(store)
    finally:
        await store.close()


@send_app.command("text")
def text(
    to: str = typer.Argument(..., help="Recipient phone number / wa_id."),
    body: str = typer.Argument(..., help="Message text."),
    db: str | None = typer.Option(None, "--db", help=DB_HELP),
    phone_number_id: str | None = typer.Option(None, "--phone-number-id"),
    dispatch: bool = typer.Option(True, "--dispatch/--no-dispatch", help="Run a dispatcher until it is settled."),
    timeout: float = typer.Option(60.0, "--timeout", help="Seconds to wait for the outcome."),
) -> None:
    """Queue one text message and print its outcome (accepted with its wamid, or failed with the reason)."""
    from waflow.canonical import OutboundMessage
    from waflow.outbox.campaigns import ConsentRefused, enqueue_message, normalize_number

    pnid = _phone_number_id(phone_number_id)
    number = normalize_number(to)

    async def work(store: Any) -> Any:
        message = OutboundMessage(to=number, type="text", content={"body": body})
        oid = await enqueue_message(store, pnid, message, business_initiated=False)
        typer.echo(f"queued outbox id {oid}")
        async with _dispatching(store, dispatch, 80.0), asyncio.timeout(timeout):
            while True:
                async with store.read() as conn:
                    rec = await store.outbox.get(conn, oid)
                if rec is not None and rec.status.value != "queued":
                    return rec
                await asyncio.sleep(0.1)

    try:
        rec = asyncio.run(_with_store(db, work))
    except TimeoutError:
        typer.echo("still queued (see `waflow send campaign status` / the admin API)")
        raise typer.Exit(2) from None
    except ConsentRefused as exc:
        typer.echo(f"opted_out: not queued: {exc.reason}")
        raise typer.Exit(1) from None
    if rec.status.value == "failed" and rec.error_class == "opted_out":
        typer.echo(f"opted_out: {rec.error_text}")
        raise typer.Exit(1)
    if rec.status.value == "failed":
        typer.echo(f"failed: [{rec.error_class} {rec.error_code}] {rec.error_text}")
        raise typer.Exit(1)
    typer.echo(f"{rec.status.value}: {rec.provider_message_id}")


@send_app.command("bulk")
def bulk(
    contacts_csv: Path = typer.Argument(..., exists=True, dir_okay=False, help="CSV with a phone column."),
    template: str = typer.Option(..., "--template", help="Template name."),
    lang: str = typer.Option("en_US", "--lang", help="Template language code."),
    param: list[str] = typer.Option([], "--param", help="Body parameter; {column} takes the CSV column."),
    name: str | None = typer.Option(None, "--name", help="Campaign name (default: the CSV file name)."),
    db: str | None = typer.Option(None, "--db", help=DB_HELP),
    phone_number_id: str | None = typer.Option(None, "--phone-number-id"),
    rate: float = typer.Option(80.0, "--rate", help="Messages/s for the dispatcher run by this command."),
    dispatch: bool = typer.Option(True, "--dispatch/--no-dispatch", help="Run a dispatcher here."),
) -> None:
    """Start a campaign: one template message per CSV row, with a progress bar until it is done."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from waflow.outbox import campaign_progress, enqueue_campaign

    pnid = _phone_number_id(phone_number_id)
    with contacts_csv.open(newline="", encoding="utf-8-sig") as fh:
        rows = list(csv.DictReader(fh))

    async def work(store: Any) -> Any:
        cid = await enqueue_campaign(store, name=name or contacts_csv.stem, phone_number_id=pnid, template=template,
                                     language=lang, contacts=rows, params=param)
        typer.echo(f"campaign {cid}: {len(rows)} messages queued")
        columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                   TimeElapsedColumn())
        async with _dispatching(store, dispatch, rate):
            with Progress(*columns) as bar:
                shown = ("sent", "delivered", "read", "failed", "skipped")
                tasks = {k: bar.add_task(k, total=len(rows)) for k in shown}
                while True:
                    p = await campaign_progress(store, cid)
                    assert p is not None
                    for key, task in tasks.items():
                        bar.update(task, completed=getattr(p, key))
                    if p.finished or p.status in ("done", "cancelled"):
                        return p
                    await asyncio.sleep(0.25)

    p = asyncio.run(_with_store(db, work))
    typer.echo(f"campaign {p.id} {p.status}: sent {p.sent}, delivered {p.delivered}, read {p.read}, failed {p.failed}, "
               f"skipped (opted out) {p.skipped}")


def _campaign_action(action: str, campaign_id: int, db: str | None) -> None:
    from waflow.outbox import campaign_progress, pause_campaign, resume_campaign

    async def work(store: Any) -> Any:
        if action == "pause":
            return await pause_campaign(store, campaign_id)
        if action == "resume":
            return await resume_campaign(store, campaign_id)
        return await campaign_progress(store, campaign_id)

    result = asyncio.run(_with_store(db, work))
    if action == "status":
        if result is None:
            typer.echo(f"no campaign {campaign_id}")
            raise typer.Exit(1)
        typer.echo(f"campaign {result.id} {result.name!r} {result.status}: total {result.total}, queued "
                   f"{result.queued}, sent {result.sent}, delivered {result.delivered}, read {result.read}, "
                   f"failed {result.failed}, skipped (opted out) {result.skipped}")
    elif not result:
        state = "running" if action == "pause" else "paused"
        typer.echo(f"campaign {campaign_id} cannot be {action}d (unknown, or not {state})")
        raise typer.Exit(1)
    else:
        typer.echo(f"campaign {campaign_id} {action}d")


@campaign_app.command("pause")
def pause(campaign_id: int = typer.Argument(...), db: str | None = typer.Option(None, "--db", help=DB_HELP)) -> None:
    """Stop claiming the campaign's queued messages."""
    _campaign_action("pause", campaign_id, db)


@campaign_app.command("resume")
def resume(campaign_id: int = typer.Argument(...), db: str | None = typer.Option(None, "--db", help=DB_HELP)) -> None:
    """Make the campaign's queued messages due again."""
    _campaign_action("resume", campaign_id, db)


@campaign_app.command("status")
def status(campaign_id: int = typer.Argument(...), db: str | None = typer.Option(None, "--db", help=DB_HELP)) -> None:
    """Counts by delivery status."""
    _campaign_action("status", campaign_id, db)
