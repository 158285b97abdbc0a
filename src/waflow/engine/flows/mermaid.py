"""A flow as Mermaid `flowchart` text (paste it into any Mermaid viewer, or a Markdown file)."""

from __future__ import annotations

import re

from waflow.engine.flows.definition import FlowDefinition
from waflow.engine.flows.graph import EVENT_KINDS
from waflow.engine.flows.nodes import GotoNode, Node, SubflowNode

_DOTTED = EVENT_KINDS | {"timeout", "no_match", "fail", "error"}
MAX_LABEL = 32


def _id(node_id: str) -> str:
    return "n_" + re.sub(r"[^A-Za-z0-9_]", "_", node_id)


def _text(text: str) -> str:
    text = " ".join(text.split())
    if len(text) > MAX_LABEL:
        text = text[: MAX_LABEL - 1] + "…"
    return text.replace('"', "#quot;").replace("<", "#lt;").replace(">", "#gt;").replace("|", "#124;")


def _shape(node_id: str, node: Node) -> str:
    label = f'"{_text(node_id)}<br/><small>{node.type}</small>"'
    if node.type == "condition":
        return f"{{{label}}}"
    if node.type == "end":
        return f"(({label}))"
    if node.waits:
        return f"([{label}])"
    if node.type in ("http", "subflow", "goto"):
        return f"[[{label}]]"
    return f"[{label}]"


def to_mermaid(defn: FlowDefinition, *, direction: str = "TD") -> str:
    """Mermaid source for the flow: one box per node (shape by kind), one arrow per transition."""
    lines = [f"flowchart {direction}", f'    start(("{_text(defn.id)}")) --> {_id(defn.start)}']
    ids: dict[str, str] = {}
    for node_id, node in defn.nodes.items():
        mermaid_id = _id(node_id)
        while mermaid_id in ids.values():
            mermaid_id += "_"
        ids[node_id] = mermaid_id
        lines.append(f"    {mermaid_id}{_shape(node_id, node)}")
    missing: list[str] = []
    for source, t in defn.edges():
        target = ids.get(t.target)
        if target is None:
            target = "missing_" + _id(t.target)
            if t.target not in missing:
                missing.append(t.target)
                lines.append(f'    {target}["{_text(t.target)} (missing)"]:::missing')
        arrow = "-.->" if t.kind in _DOTTED else "-->"
        label = f'|"{_text(t.label)}"|' if t.label else ""
        lines.append(f"    {ids[source]} {arrow}{label} {target}")
    for node_id, node in defn.nodes.items():
        if isinstance(node, GotoNode | SubflowNode) and node.flow is not None:
            entry = f"{node.flow}:{node.node}" if node.node else node.flow
            lines.append(f'    {ids[node_id]} ==> {_id("flow_" + node.flow)}[/"flow {_text(entry)}"/]')
    waiting = [ids[n] for n, node in defn.nodes.items() if node.waits]
    if waiting:
        lines.append(f"    class {','.join(waiting)} waits")
    lines.append("    classDef waits fill:#e8f4ff,stroke:#3b82f6")
    if missing:
        lines.append("    classDef missing fill:#fee2e2,stroke:#dc2626,stroke-dasharray:4")
    return "\n".join(lines) + "\n"
