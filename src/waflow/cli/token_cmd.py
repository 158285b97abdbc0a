"""`waflow token check | exchange`: what each number's access token is; a long-lived one for a user token.

The work is in `waflow.server.token_tools` (Graph's `debug_token` and the token exchange, as the app:
`numbers[].app_id` + `app_secret`); these commands only parse arguments and print.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Annotated

import typer

from waflow.cli.app import app
from waflow.cli.serve_cmd import ConfigOption, _settings

if TYPE_CHECKING:
    from rich.console import Console

    from waflow.config import Settings
    from waflow.server.token_tools import TokenReport

token_app = typer.Typer(
    help="Check the numbers' access tokens (type, app, expiry, scopes); exchange a user token for a long-lived one.",
    no_args_is_help=True,
)
app.add_typer(token_app, name="token")

NumberOption = Annotated[
    str | None, typer.Option("--number", help="Only this number (its phone_number_id). Default: every number.")
]


def _fail(text: str, code: int = 1) -> typer.Exit:
    typer.echo(f"error: {text}", err=True)
    return typer.Exit(code)


@token_app.command("check")
def check(config: ConfigOption = None, number: NumberOption = None) -> None:
    """Ask Graph about each number's token: type, app, expiry, scopes, the WABAs it serves. Exit 1 naming the
    problem when a token is wrong, expired or lacks a permission, or cannot be checked (no app_id)."""
    from rich.console import Console

    from waflow.server.token_tools import TokenToolError, inspect_token, pick_numbers

    settings = _settings(config)
    try:
        numbers = pick_numbers(settings, number)
    except TokenToolError as exc:
        raise _fail(str(exc), 2) from None

    async def run() -> list[TokenReport]:
        return [await inspect_token(settings, i, n) for i, n in numbers]

    reports = asyncio.run(run())
    console = Console(highlight=False, soft_wrap=True)
    now = time.time()
    for report in reports:
        _print_report(console, settings, report, now)
    failed = [r for r in reports if r.errors]
    for report in failed:
        for text in report.errors:
            typer.echo(f"error: {text if text.startswith(report.label) else f'{report.label}: {text}'}", err=True)
    raise typer.Exit(1 if failed else 0)


def _print_report(console: Console, settings: Settings, report: TokenReport, now: float) -> None:
    from rich.markup import escape

    from waflow.cloudapi.errors import SCOPE_PURPOSE, WHATSAPP_SCOPES
    from waflow.cloudapi.token_info import describe_expiry

    number = report.number
    name = f" — {number.display_name}" if number.display_name else ""
    console.print(f"[bold]{escape(report.label)}[/bold]{escape(name)}")
    info = report.info
    if info is None or (info.problem is not None and not info.type):
        for text in report.errors:
            console.print(f"  [red]✗[/red] {escape(text.removeprefix(report.label + ': '))}")
        console.print()
        return
    console.print(f"  type     {escape(info.kind)}")
    app_name = f"{info.application} ({info.app_id})" if info.application else (info.app_id or "?")
    console.print(f"  app      {escape(app_name)}")
    expiry = describe_expiry(info.expires_at, now)
    soon = bool(info.expires_at) and 0 < info.expires_at - now <= 7 * 86400
    colour = "red" if info.problem is not None else ("yellow" if soon else "green")
    console.print(f"  expires  [{colour}]{escape(expiry)}[/{colour}]")
    if info.problem is None:
        marks = []
        for scope in WHATSAPP_SCOPES:
            if info.has_scope(scope):
                marks.append(f"[green]✓[/green] {scope}")
            else:
                marks.append(f"[red]✗[/red] {scope} missing ({SCOPE_PURPOSE[scope]})")
        others = [s for s in info.scopes if s not in WHATSAPP_SCOPES]
        console.print("  scopes   " + "\n           ".join(marks))
        if others:
            console.print(f"           also: {escape(', '.join(others))}")
        targets = info.whatsapp_targets()
        if targets:
            served = [n.phone_number_id for n in settings.numbers if n.waba_id in targets]
            wabas = ", ".join(f"{t} (this number's)" if t == number.waba_id else t for t in targets)
            console.print(f"  serves   WABA {escape(wabas)}")
            console.print(f"           numbers of this configuration: {escape(', '.join(served) or 'none')}")
        else:
            console.print("  serves   every WABA its user may use (Graph lists no WABA ids for the token)")
    if soon and info.problem is None:
        console.print("  [yellow]![/yellow] expires within 7 days: put a new token where the number's token points"
                      + (" or run `waflow token exchange`" if info.type == "USER" else ""))
    for text in report.warnings:
        console.print(f"  [yellow]![/yellow] {escape(text)}")
    for text in report.errors:
        console.print(f"  [red]✗[/red] {escape(text.removeprefix(report.label + ': '))}")
    if not report.errors:
        console.print("  [green]✓ usable[/green]")
    console.print()


@token_app.command("exchange")
def exchange(
    config: ConfigOption = None,
    number: NumberOption = None,
    token: Annotated[
        str | None,
        typer.Option("--token", help="The short-lived user token to exchange. Default: the number's configured token."),
    ] = None,
    print_token: Annotated[
        bool, typer.Option("--print", help="Also print the new token (it is a secret: only when you need it).")
    ] = False,
) -> None:
    """Exchange a short-lived user token for a long-lived one (about 60 days) and write it where the number's
    `token = "file:/path"` points (atomically, mode 0600); for env: or literal tokens, say what to do."""
    from waflow.cloudapi.token_info import describe_expiry
    from waflow.server.token_tools import NothingToExchange, TokenToolError, exchange_token, pick_one, place_token

    settings = _settings(config)
    try:
        index, chosen = pick_one(settings, number)
    except TokenToolError as exc:
        raise _fail(str(exc), 2) from None
    now = time.time()
    try:
        new_token, expires_at = asyncio.run(exchange_token(settings, index, chosen, token, now=now))
        result = place_token(chosen, new_token, expires_at)
    except NothingToExchange as exc:
        typer.echo(str(exc))
        raise typer.Exit(0) from None
    except TokenToolError as exc:
        raise _fail(str(exc)) from None
    label = f"numbers[{index}] ({chosen.phone_number_id})"
    expiry = describe_expiry(result.expires_at, now) if result.expires_at is not None else "in about 60 days"
    if result.written_to is not None:
        typer.echo(f"{label}: wrote a long-lived user token (expires {expiry}) to {result.written_to}; "
                   "waflow reads it again when Graph rejects the old one")
    elif result.reference_kind == "env":
        typer.echo(f"{label}: got a long-lived user token (expires {expiry}). numbers[{index}].token is read from "
                   f"the environment variable {result.reference}: set it to the new token and restart waflow"
                   + ("" if print_token else " (add --print to show it)"))
    else:
        typer.echo(f"{label}: got a long-lived user token (expires {expiry}). numbers[{index}].token is written in "
                   "the configuration: put the new token in a file and set token = \"file:/path\""
                   + ("" if print_token else " (add --print to show it)"))
    if print_token:
        typer.echo(result.token.get_secret_value())
