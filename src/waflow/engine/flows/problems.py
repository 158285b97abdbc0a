"""What is wrong with a flow: `FlowProblem` (one finding) and `FlowLoadError` (a file that did not load)."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, replace


class Severity(enum.StrEnum):
    ERROR = "error"  # the flow cannot be deployed
    WARNING = "warning"  # it can, but probably does not do what its author meant


def format_path(path: Sequence[str | int]) -> str:
    """`("buttons", 0, "title")` → `"buttons[0].title"`."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


@dataclass(frozen=True, slots=True)
class FlowProblem:
    """One finding about a flow: where (node id, field path inside the node, source line) and what."""

    severity: Severity
    code: str  # a stable slug: unknown-target, unreachable, button-title-length, ...
    message: str
    node: str | None = None
    path: tuple[str | int, ...] = ()  # inside the node when `node` is set, else from the flow's root
    line: int | None = None  # 1-based, when the source is known
    column: int | None = None

    @property
    def field(self) -> str:
        return format_path(self.path)

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR

    def with_position(self, line: int | None, column: int | None) -> FlowProblem:
        return replace(self, line=line, column=column)

    def __str__(self) -> str:
        where = ""
        if self.line is not None:
            where = f"line {self.line}: "
        if self.node is not None:
            where += f"node {self.node!r}"
            if self.path:
                where += f" {self.field}"
            where += ": "
        elif self.path:
            where += f"{self.field}: "
        return f"{self.severity.value}: {where}{self.message}"


def error(code: str, message: str, node: str | None = None, path: tuple[str | int, ...] = ()) -> FlowProblem:
    return FlowProblem(Severity.ERROR, code, message, node, path)


def warning(code: str, message: str, node: str | None = None, path: tuple[str | int, ...] = ()) -> FlowProblem:
    return FlowProblem(Severity.WARNING, code, message, node, path)


class FlowLoadError(Exception):
    """A flow file or string that could not be turned into a `FlowDefinition`; `problems` lists every reason."""

    def __init__(self, problems: Sequence[FlowProblem], source: str = "<string>") -> None:
        self.problems = list(problems)
        self.source = source
        lines = "\n".join(f"  {p}" for p in self.problems)
        super().__init__(f"{source}: the flow did not load ({len(self.problems)} problem(s)):\n{lines}")
