"""`FlowDefinition`: a whole flow — id, triggers, start node, variables, and the nodes by id."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from waflow.engine.flows.durations import Duration
from waflow.engine.flows.nodes import ID_PATTERN, Node, NodeRef, Transition, VarName
from waflow.engine.flows.triggers import Trigger

MAX_NODES = 500


class FlowDefinition(BaseModel):
    """A flow as its author wrote it (validated for types; `validate_flow` checks the meaning)."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="waflow flow")

    schema_: str | None = Field(None, alias="$schema", description="editor hint; ignored")
    id: str = Field(pattern=ID_PATTERN, description="the flow's id (stable across versions)")
    name: str | None = Field(None, max_length=200)
    description: str | None = Field(None, max_length=4000)
    triggers: list[Trigger] = Field(default_factory=list)
    start: NodeRef
    session_timeout: Duration | None = Field(
        None, description="end an idle session after this long (default: the runtime's)"
    )
    vars: dict[VarName, Any] = Field(
        default_factory=dict, description="defaults: a session starts with these; also `flow.vars`"
    )
    nodes: dict[NodeRef, Node] = Field(min_length=1, max_length=MAX_NODES)

    def node(self, node_id: str) -> Node:
        """The node with this id (`KeyError` if there is none)."""
        return self.nodes[node_id]

    def edges(self) -> Iterator[tuple[str, Transition]]:
        """Every transition of every node, in file order: `(source node id, transition)`."""
        for node_id, node in self.nodes.items():
            for transition in node.transitions():
                yield node_id, transition
