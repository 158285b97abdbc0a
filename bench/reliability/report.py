"""The suite's verdict: one row per scenario run — what was tried, whether the CPU hog ran beside it, and what
held (✓/✗ with figures)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from rich.console import Console
from rich.table import Table


@dataclass(frozen=True)
class Check:
    """One promise, whether it held, and the figures that show it."""

    name: str
    ok: bool
    figure: str = ""

    def render(self) -> str:
        mark = "[green]✓[/]" if self.ok else "[bold red]✗[/]"
        return f"{mark} {self.name}" + (f": {self.figure}" if self.figure else "")


@dataclass
class Result:
    scenario: str
    tried: str
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what went wrong, with examples
    seconds: float = 0.0
    skipped: str | None = None
    hog: str | None = None  # "off", "on (0.97 core)" (`bench.reliability.hog`); None: not a scenario run

    @property
    def ok(self) -> bool:
        return self.skipped is None and bool(self.checks) and all(c.ok for c in self.checks)

    def failed(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    def summary(self) -> str:
        """Plain text (for assertion messages and logs)."""
        hog = f", CPU hog {self.hog}" if self.hog is not None else ""
        lines = [f"{self.scenario}: {'held' if self.ok else 'NOT held'} ({self.seconds:.0f} s{hog}) — {self.tried}"]
        lines += [f"  {'ok ' if c.ok else 'BAD'} {c.name}: {c.figure}" for c in self.checks]
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


def table(results: Sequence[Result], title: str) -> Table:
    t = Table(title=title, show_lines=True, expand=False)
    t.add_column("scenario", style="bold", no_wrap=True)
    t.add_column("what was tried", max_width=48)
    t.add_column("CPU hog", max_width=10)
    t.add_column("what held", max_width=78)
    for r in results:
        if r.skipped is not None:
            held = f"[yellow]skipped[/]: {r.skipped}"
        else:
            held = "\n".join(c.render() for c in r.checks) or "[bold red]✗ nothing checked[/]"
        hog = "—" if r.hog is None else f"[yellow]{r.hog}[/]" if r.hog.startswith("on") else r.hog
        t.add_row(f"{r.scenario}\n[dim]{r.seconds:.0f} s[/]", r.tried, hog, held)
    return t


def print_report(results: Sequence[Result], title: str, console: Console | None = None) -> None:
    console = console or Console()
    console.print(table(results, title))
    for r in results:
        if r.notes and not r.ok:
            console.print(f"[bold]{r.scenario}[/]:")
            for n in r.notes:
                console.print(f"  • {n}", markup=False, highlight=False)
