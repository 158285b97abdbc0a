"""`waflow flow validate / graph / schema / hash`."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from waflow.cli import flow_cmd  # noqa: F401  (registers `waflow flow`)
from waflow.cli.app import app
from waflow.engine.flows.schema import schema_text

from .helpers import EXAMPLE_FILES, EXAMPLES

runner = CliRunner()


def test_validate_examples_ok() -> None:
    result = runner.invoke(app, ["flow", "validate", *map(str, EXAMPLE_FILES)])
    assert result.exit_code == 0, result.output
    assert result.output.count("ok") == len(EXAMPLE_FILES)


def test_validate_reports_node_and_field_and_fails(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("id: bad\nstart: a\nnodes:\n  a: {type: message, text: hi, next: nowhere}\n")
    broken = tmp_path / "broken.yaml"
    broken.write_text("id: [\n")
    result = runner.invoke(app, ["flow", "validate", str(bad), str(broken)], env={"COLUMNS": "200"})
    assert result.exit_code == 1
    assert "unknown-target" in result.output and "nowhere" in result.output and "next" in result.output
    assert "invalid YAML" in result.output


def test_validate_strict_fails_on_warnings(tmp_path: Path) -> None:
    flow = tmp_path / "w.yaml"
    flow.write_text("id: w\nstart: a\nnodes:\n  a: {type: end}\n")  # no triggers: a warning
    assert runner.invoke(app, ["flow", "validate", str(flow)]).exit_code == 0
    assert runner.invoke(app, ["flow", "validate", "--strict", str(flow)]).exit_code == 1


def test_graph_formats(tmp_path: Path) -> None:
    path = str(EXAMPLES / "order_tracking.yaml")
    result = runner.invoke(app, ["flow", "graph", path])
    assert result.exit_code == 0 and result.output.startswith("flowchart TD")
    out = tmp_path / "g.svg"
    result = runner.invoke(app, ["flow", "graph", path, "--format", "svg", "-o", str(out)])
    assert result.exit_code == 0 and out.read_text().startswith("<svg")
    result = runner.invoke(app, ["flow", "graph", path, "--format", "png", "-o", str(tmp_path / "g.png")])
    assert result.exit_code == 2 and "rasterizer" in result.output


def test_schema_and_hash(tmp_path: Path) -> None:
    result = runner.invoke(app, ["flow", "schema"])
    assert result.exit_code == 0 and result.output == schema_text()
    result = runner.invoke(app, ["flow", "hash", str(EXAMPLES / "pizza.yaml")])
    assert result.exit_code == 0 and result.output.startswith("pizza\t")
