"""A flow drawn as SVG by a small layered layout: no Graphviz, no browser, no external binaries.

Layers are the breadth-first distance from the start node (unreachable nodes go last); within a
layer nodes are ordered by the mean position of their parents. Forward edges are straight arrows;
edges back to the same or an earlier layer curve around on the right.
"""

from __future__ import annotations

from dataclasses import dataclass
from xml.sax.saxutils import escape

from waflow.engine.flows.definition import FlowDefinition
from waflow.engine.flows.graph import Edge, edges, layers

BOX_H = 44
GAP_X = 40
GAP_Y = 70
MARGIN = 40
CHAR_W = 7.2
FILL = {
    "waits": "#e8f4ff",
    "condition": "#fff7e0",
    "end": "#eeeeee",
    "http": "#f0fdf4",
    "other": "#ffffff",
}


@dataclass
class _Box:
    x: float
    y: float
    w: float

    @property
    def cx(self) -> float:
        return self.x + self.w / 2


class PngUnavailable(RuntimeError):
    """Raised for PNG output: it needs a rasterizer, and there is no pure-Python one installed."""


def _order(defn: FlowDefinition, rows: list[list[str]]) -> list[list[str]]:
    parents: dict[str, list[str]] = {n: [] for n in defn.nodes}
    for edge in edges(defn):
        parents[edge.target].append(edge.source)
    position: dict[str, float] = {}
    ordered = []
    for row in rows:
        original = {n: float(i) for i, n in enumerate(row)}

        def key(n: str, original: dict[str, float] = original) -> float:
            known = [position[p] for p in parents[n] if p in position]
            return sum(known) / len(known) if known else original[n] - (len(original) - 1) / 2

        placed = sorted(row, key=key)
        for i, n in enumerate(placed):
            position[n] = i - (len(placed) - 1) / 2
        ordered.append(placed)
    return ordered


def to_svg(defn: FlowDefinition) -> str:
    """A standalone SVG document of the flow."""
    rows = _order(defn, layers(defn))
    widths = {n: max(110.0, CHAR_W * max(len(n), len(defn.nodes[n].type) + 2) + 24) for n in defn.nodes}
    row_widths = [sum(widths[n] for n in row) + GAP_X * (len(row) - 1) for row in rows]
    width = max(row_widths, default=200) + 2 * MARGIN + 160
    boxes: dict[str, _Box] = {}
    for r, row in enumerate(rows):
        x = MARGIN + (max(row_widths) - row_widths[r]) / 2
        y = MARGIN + 30 + r * (BOX_H + GAP_Y)
        for n in row:
            boxes[n] = _Box(x, y, widths[n])
            x += widths[n] + GAP_X
    height = MARGIN * 2 + 30 + len(rows) * (BOX_H + GAP_Y)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" font-family="Helvetica, Arial, sans-serif" font-size="12">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#555"/></marker></defs>',
        f'<rect width="100%" height="100%" fill="#fcfcfc"/><text x="{MARGIN}" y="{MARGIN}" font-size="16" '
        f'font-weight="bold">{escape(defn.name or defn.id)}</text>',
    ]
    out += _edges_svg(defn, boxes)
    for n, box in boxes.items():
        node = defn.nodes[n]
        kind = "waits" if node.waits else node.type if node.type in FILL else "other"
        stroke = "#16a34a" if n == defn.start else "#555"
        radius = 20 if node.waits or node.type == "end" else 4
        out.append(
            f'<g><rect x="{box.x:.1f}" y="{box.y:.1f}" width="{box.w:.1f}" height="{BOX_H}" rx="{radius}" '
            f'fill="{FILL[kind]}" stroke="{stroke}" stroke-width="{2 if n == defn.start else 1}"/>'
            f'<text x="{box.cx:.1f}" y="{box.y + 18:.1f}" text-anchor="middle" font-weight="bold">{escape(n)}</text>'
            f'<text x="{box.cx:.1f}" y="{box.y + 34:.1f}" text-anchor="middle" fill="#666" font-size="11">'
            f"{escape(node.type)}</text></g>"
        )
    out.append("</svg>")
    return "\n".join(out) + "\n"


_DASHED = frozenset({"failed", "timeout", "no_match", "fail", "error"})


def _merged(defn: FlowDefinition) -> list[Edge]:
    """One arrow per (source, target, style): parallel transitions share it, labels joined."""
    merged: dict[tuple[str, str, bool], Edge] = {}
    for edge in edges(defn):
        key = (edge.source, edge.target, edge.kind in _DASHED)
        known = merged.get(key)
        if known is None:
            merged[key] = edge
        elif edge.label:
            label = f"{known.label}, {edge.label}" if known.label else edge.label
            merged[key] = Edge(known.source, known.target, known.kind, label, known.path)
    return list(merged.values())


def _edges_svg(defn: FlowDefinition, boxes: dict[str, _Box]) -> list[str]:
    out = []
    loop = 0
    for edge in _merged(defn):
        a, b = boxes[edge.source], boxes[edge.target]
        dashed = ' stroke-dasharray="5,4"' if edge.kind in _DASHED else ""
        if b.y > a.y:
            x1, y1, x2, y2 = a.cx, a.y + BOX_H, b.cx, b.y
            path = f"M {x1:.1f} {y1:.1f} L {x2:.1f} {y2:.1f}"
            lx, ly = (x1 + x2) / 2, (y1 + y2) / 2
        else:
            loop += 1
            bend = 30 + 12 * (loop % 6)
            x1, y1, x2, y2 = a.x + a.w, a.y + BOX_H / 2, b.x + b.w, b.y + BOX_H / 2
            if edge.source == edge.target:
                y1, y2 = a.y + 12, a.y + BOX_H - 12
            reach = max(x1, x2) + bend
            path = f"M {x1:.1f} {y1:.1f} C {reach:.1f} {y1:.1f}, {reach:.1f} {y2:.1f}, {x2:.1f} {y2:.1f}"
            lx, ly = reach - bend / 4, (y1 + y2) / 2
        out.append(f'<path d="{path}" fill="none" stroke="#555"{dashed} marker-end="url(#arrow)"/>')
        if edge.label:
            label = edge.label if len(edge.label) <= 32 else edge.label[:31] + "…"
            out.append(
                f'<text x="{lx:.1f}" y="{ly:.1f}" text-anchor="middle" font-size="10" fill="#333" '
                f'stroke="#fcfcfc" stroke-width="3" paint-order="stroke">{escape(label)}</text>'
            )
    return out


def to_png(defn: FlowDefinition) -> bytes:
    """Not available: PNG needs a rasterizer (cairosvg or Pillow with a font), none of which is pure Python."""
    raise PngUnavailable(
        "PNG output needs a rasterizer (cairosvg or Pillow), which is not installed and not pure Python; "
        "use --format svg (any browser shows it) or --format mermaid"
    )
