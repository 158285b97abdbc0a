"""Load and validate in one step, with source lines: what `waflow flow validate` and deploys use."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from waflow.engine.flows.definition import FlowDefinition
from waflow.engine.flows.loader import Format, Positions, load_flow_data, parse_flow_text
from waflow.engine.flows.problems import FlowLoadError, FlowProblem, error
from waflow.engine.flows.validate import validate_flow


@dataclass
class FlowReport:
    """The outcome for one source: the definition when it loaded, and every problem found."""

    source: str
    definition: FlowDefinition | None
    problems: list[FlowProblem] = field(default_factory=list)
    positions: Positions = field(default_factory=dict, repr=False)

    @property
    def ok(self) -> bool:
        """Loaded, and no errors (warnings allowed): deployable."""
        return self.definition is not None and not any(p.is_error for p in self.problems)

    @property
    def errors(self) -> list[FlowProblem]:
        return [p for p in self.problems if p.is_error]

    @property
    def warnings(self) -> list[FlowProblem]:
        return [p for p in self.problems if not p.is_error]


def _locate(problem: FlowProblem, positions: Positions) -> FlowProblem:
    if problem.line is not None or not positions:
        return problem
    full = ("nodes", problem.node, *problem.path) if problem.node is not None else problem.path
    for end in range(len(full), -1, -1):
        found = positions.get(full[:end])
        if found is not None:
            return problem.with_position(*found)
    return problem


def _load(text: str | bytes, source: str, fmt: Format) -> FlowReport:
    try:
        data, positions = parse_flow_text(text, fmt=fmt, source=source)
        defn = load_flow_data(data, source=source, positions=positions)
    except FlowLoadError as exc:
        return FlowReport(source, None, exc.problems)
    return FlowReport(source, defn, [], positions)


def _validate(report: FlowReport, known_flows: Mapping[str, FlowDefinition] | None) -> FlowReport:
    if report.definition is not None:
        problems = validate_flow(report.definition, known_flows=known_flows)
        report.problems = [_locate(p, report.positions) for p in problems]
    return report


def check_flow_text(
    text: str | bytes,
    *,
    source: str = "<string>",
    fmt: Format = "auto",
    known_flows: Mapping[str, FlowDefinition] | None = None,
) -> FlowReport:
    """Load a document and validate it; problems carry source lines."""
    return _validate(_load(text, source, fmt), known_flows)


def _read(path: Path) -> FlowReport | bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        return FlowReport(str(path), None, [error("load", f"cannot read the file: {exc.strerror or exc}")])


def check_flow_files(paths: Iterable[str | os.PathLike[str]]) -> list[FlowReport]:
    """Load every file, then validate each one knowing the others (for `goto`/`subflow` across flows)."""
    reports = []
    for raw_path in paths:
        path = Path(raw_path)
        content = _read(path)
        if isinstance(content, FlowReport):
            reports.append(content)
            continue
        fmt: Format = "json" if path.suffix.lower() == ".json" else "yaml"
        reports.append(_load(content, str(path), fmt))
    known = {r.definition.id: r.definition for r in reports if r.definition is not None}
    seen: dict[str, str] = {}
    for report in reports:
        _validate(report, known)
        if report.definition is not None:
            other = seen.setdefault(report.definition.id, report.source)
            if other != report.source:
                report.problems.insert(
                    0,
                    error(
                        "duplicate-flow-id", f"flow id {report.definition.id!r} is also used by {other}", path=("id",)
                    ),
                )
    return reports


def check_flow_file(path: str | os.PathLike[str]) -> FlowReport:
    return check_flow_files([path])[0]
