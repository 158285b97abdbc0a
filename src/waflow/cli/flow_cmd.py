"""`waflow flow ...`: validate flow files, draw them, print their JSON Schema and version hash.

The work is in `waflow.engine`; these commands only parse arguments and print.
"""

from __future__ import annotations

from pathlib import Path

import typer

from waflow.cli.app import app

flow_app = typer.Typer(help="Check, draw and describe conversation flows.", no_args_is_help=True)
app.add_typer(flow_app, name="flow")


@flow_app.command("validate")
def validate(
    files: list[Path] = typer.Argument(..., help="Flow files (.yaml, .yml, .json); validated together."),
    strict: bool = typer.Option(False, "--strict", help="Warnings fail too (exit 1)."),
) -> None:
    """Print every problem of each flow with its node and field; exit 1 if any has errors."""
    from rich.console import Console
    from rich.table import Table

    from waflow.engine import check_flow_files

    console = Console()
    reports = check_flow_files(files)
    failed = False
    for report in reports:
        errors, warnings = len(report.errors), len(report.warnings)
        failed = failed or errors > 0 or (strict and warnings > 0)
        if not report.problems:
            console.print(f"[green]✓[/green] {report.source}: ok")
            continue
        mark = "[red]✗[/red]" if errors else "[yellow]![/yellow]"
        console.print(f"{mark} {report.source}: {errors} error(s), {warnings} warning(s)")
        table = Table(show_header=True, header_style="bold", expand=True)
        for column, ratio in (("severity", 1), ("line", 1), ("node", 2), ("field", 2), ("problem", 6), ("code", 2)):
            table.add_column(column, overflow="fold", ratio=ratio)
        for p in report.problems:
            colour = "red" if p.is_error else "yellow"
            table.add_row(
                f"[{colour}]{p.severity.value}[/{colour}]",
                "" if p.line is None else str(p.line),
                p.node or "",
                p.field,
                p.message,
                p.code,
            )
        console.print(table)
    raise typer.Exit(1 if failed else 0)


@flow_app.command("graph")
def graph(
    file: Path = typer.Argument(..., help="A flow file."),
    fmt: str = typer.Option("mermaid", "--format", "-f", help="mermaid, svg or png."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Write here instead of stdout."),
) -> None:
    """Draw the flow: Mermaid text, or an SVG image (PNG is not available without a rasterizer)."""
    from waflow.engine import FlowLoadError, PngUnavailable, load_flow_file, to_mermaid, to_png, to_svg

    fmt = fmt.lower()
    if fmt not in ("mermaid", "svg", "png"):
        typer.echo(f"unknown format {fmt!r}: use mermaid, svg or png", err=True)
        raise typer.Exit(2)
    try:
        defn = load_flow_file(file)
    except FlowLoadError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    if fmt == "png":
        try:
            data = to_png(defn)
        except PngUnavailable as exc:
            typer.echo(f"png: {exc}", err=True)
            raise typer.Exit(2) from None
        if output is None:
            typer.echo("png output needs --output FILE", err=True)
            raise typer.Exit(2)
        output.write_bytes(data)
        return
    text = to_mermaid(defn) if fmt == "mermaid" else to_svg(defn)
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        typer.echo(f"wrote {output}", err=True)


@flow_app.command("schema")
def schema(
    output: Path | None = typer.Option(None, "--output", "-o", help="Write here instead of stdout."),
) -> None:
    """Print the JSON Schema of flow files (for editors: yaml-language-server, VS Code, ...)."""
    from waflow.engine.flows.schema import schema_text

    text = schema_text()
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        typer.echo(f"wrote {output}", err=True)


@flow_app.command("hash")
def hash_(files: list[Path] = typer.Argument(..., help="Flow files.")) -> None:
    """Print each flow's id and version hash (what a deploy records; sessions stay on their version)."""
    from waflow.engine import FlowLoadError, flow_hash, load_flow_file

    failed = False
    for file in files:
        try:
            defn = load_flow_file(file)
        except FlowLoadError as exc:
            typer.echo(str(exc), err=True)
            failed = True
            continue
        typer.echo(f"{defn.id}\t{flow_hash(defn)}\t{file}")
    raise typer.Exit(1 if failed else 0)
