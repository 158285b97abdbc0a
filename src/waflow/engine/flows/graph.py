"""The flow as a graph: edges, reachability, cycles that never wait, and layers for drawing."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from waflow.engine.flows.definition import FlowDefinition
from waflow.engine.flows.nodes import Transition

# An `on_failed` edge is taken when a status webhook reports a failed delivery: an event, not a spin.
EVENT_KINDS = frozenset({"failed"})


@dataclass(frozen=True, slots=True)
class Edge:
    source: str
    target: str
    kind: str
    label: str
    path: tuple[str | int, ...]


def edges(defn: FlowDefinition, *, known_only: bool = True) -> list[Edge]:
    """All edges in file order; with `known_only`, only those whose target exists."""
    out: list[Edge] = []
    for source, t in defn.edges():
        if known_only and t.target not in defn.nodes:
            continue
        out.append(_edge(source, t))
    return out


def _edge(source: str, t: Transition) -> Edge:
    return Edge(source, t.target, t.kind, t.label, t.path)


def successors(defn: FlowDefinition) -> dict[str, list[str]]:
    succ: dict[str, list[str]] = {node_id: [] for node_id in defn.nodes}
    for edge in edges(defn):
        if edge.target not in succ[edge.source]:
            succ[edge.source].append(edge.target)
    return succ


def reachable(defn: FlowDefinition) -> set[str]:
    """Nodes reachable from `start` (empty when `start` does not exist)."""
    if defn.start not in defn.nodes:
        return set()
    succ = successors(defn)
    seen = {defn.start}
    queue = deque([defn.start])
    while queue:
        for nxt in succ[queue.popleft()]:
            if nxt not in seen:
                seen.add(nxt)
                queue.append(nxt)
    return seen


def strongly_connected(nodes: list[str], succ: dict[str, list[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative; components in discovery order."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    result: list[list[str]] = []
    counter = 0
    for root in nodes:
        if root in index:
            continue
        work: list[tuple[str, int]] = [(root, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            children = succ.get(node, [])
            if i < len(children):
                work.append((node, i + 1))
                child = children[i]
                if child not in index:
                    work.append((child, 0))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                result.append(list(reversed(component)))
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return result


def busy_cycles(defn: FlowDefinition) -> list[list[str]]:
    """Cycles made only of nodes that do not wait: the runtime could run them forever without input.

    Edges leaving a waiting node (buttons, list, question, wait, handoff, template with replies)
    happen after a wait, so only the edges between non-waiting nodes are kept.
    """
    succ: dict[str, list[str]] = {}
    for edge in edges(defn):
        if edge.kind in EVENT_KINDS or defn.nodes[edge.source].waits or defn.nodes[edge.target].waits:
            continue
        succ.setdefault(edge.source, [])
        if edge.target not in succ[edge.source]:
            succ[edge.source].append(edge.target)
    cycles = []
    for component in strongly_connected(list(defn.nodes), succ):
        if len(component) > 1 or component[0] in succ.get(component[0], []):
            cycles.append(component)
    return cycles


def layers(defn: FlowDefinition) -> list[list[str]]:
    """Nodes in layers for drawing: breadth-first distance from `start`; unreachable nodes last."""
    succ = successors(defn)
    depth: dict[str, int] = {}
    if defn.start in defn.nodes:
        depth[defn.start] = 0
        queue = deque([defn.start])
        while queue:
            node = queue.popleft()
            for nxt in succ[node]:
                if nxt not in depth:
                    depth[nxt] = depth[node] + 1
                    queue.append(nxt)
    out: list[list[str]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
    for node_id in defn.nodes:
        if node_id in depth:
            out[depth[node_id]].append(node_id)
    rest = [node_id for node_id in defn.nodes if node_id not in depth]
    if rest:
        out.append(rest)
    return out
