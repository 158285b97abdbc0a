from __future__ import annotations

from pathlib import Path

from waflow.engine import FlowDefinition, FlowProblem, check_flow_text, load_flow_text

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
GOLDEN = Path(__file__).resolve().parent / "golden"
EXAMPLE_FILES = sorted(EXAMPLES.glob("*.yaml"))


def load(text: str) -> FlowDefinition:
    return load_flow_text(text)


def problems(text: str) -> list[FlowProblem]:
    report = check_flow_text(text)
    return report.problems


def find(found: list[FlowProblem], code: str, node: str | None = None, field: str | None = None) -> FlowProblem:
    for p in found:
        if p.code == code and (node is None or p.node == node) and (field is None or p.field == field):
            return p
    raise AssertionError(f"no {code} problem at {node} {field}; got:\n" + "\n".join(map(str, found)))
