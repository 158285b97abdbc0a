"""Drawing: Mermaid golden files, SVG structure, layered layout."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from waflow.engine import PngUnavailable, load_flow_file, load_flow_text, to_mermaid, to_png, to_svg
from waflow.engine.flows.graph import busy_cycles, layers, reachable

from .helpers import EXAMPLE_FILES, EXAMPLES, GOLDEN

UPDATE = os.environ.get("WAFLOW_UPDATE_GOLDEN") == "1"


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.name)
def test_mermaid_golden(path: Path) -> None:
    text = to_mermaid(load_flow_file(path))
    golden = GOLDEN / f"{path.stem}.mmd"
    if UPDATE:
        golden.write_text(text)
    assert text == golden.read_text(), f"regenerate with WAFLOW_UPDATE_GOLDEN=1 and review {golden}"


def test_mermaid_escapes_and_marks_missing_targets() -> None:
    defn = load_flow_text(
        "id: x\nstart: end\nnodes:\n  end: {type: condition, branches: [{if: 'vars.a == \"q|<b>\"', next: a-b}],"
        " else: gone}\n  a-b: {type: goto, flow: other, node: n1}\n"
    )
    text = to_mermaid(defn)
    assert 'n_end{"end<br/><small>condition</small>"}' in text  # `end` is a Mermaid keyword: ids are prefixed
    assert "#quot;q#124;#lt;b#gt;#quot;" in text
    assert 'missing_n_gone["gone (missing)"]:::missing' in text
    assert 'n_a_b ==> n_flow_other[/"flow other:n1"/]' in text


def test_svg_is_well_formed_and_complete() -> None:
    defn = load_flow_file(EXAMPLES / "appointment.yaml")
    svg = to_svg(defn)
    root = ET.fromstring(svg)
    ns = "{http://www.w3.org/2000/svg}"
    assert root.tag == f"{ns}svg"
    texts = {t.text for t in root.iter(f"{ns}text")}
    assert set(defn.nodes) <= texts
    rects = [r for r in root.iter(f"{ns}rect") if r.get("rx")]
    assert len(rects) == len(defn.nodes)
    boxes = [(float(r.get("x", 0)), float(r.get("y", 0)), float(r.get("width", 0))) for r in rects]
    for i, (x1, y1, w1) in enumerate(boxes):  # no two boxes overlap
        for x2, y2, w2 in boxes[i + 1 :]:
            assert y1 != y2 or x1 + w1 <= x2 or x2 + w2 <= x1
    assert len(list(root.iter(f"{ns}path"))) >= len(defn.nodes)


def test_layers_follow_distance_from_start() -> None:
    defn = load_flow_text(
        "id: x\nstart: a\nnodes:\n  a: {type: message, text: t, next: b}\n  b: {type: wait, duration: 1m, next: a}\n"
        "  c: {type: end}\n"
    )
    assert layers(defn) == [["a"], ["b"], ["c"]]
    assert reachable(defn) == {"a", "b"}
    assert busy_cycles(defn) == []


def test_png_says_clearly_it_is_unavailable() -> None:
    defn = load_flow_file(EXAMPLES / "pizza.yaml")
    with pytest.raises(PngUnavailable, match="--format svg"):
        to_png(defn)
