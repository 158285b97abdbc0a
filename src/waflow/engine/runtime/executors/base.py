"""`NodeCtx`: what a node executor works with — the turn, the session, the flow version, the node id."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from waflow.engine.flows.definition import FlowDefinition
from waflow.engine.runtime.state import SessionState
from waflow.engine.runtime.turn import Turn


@dataclass(slots=True)
class NodeCtx:
    turn: Turn
    session: SessionState
    defn: FlowDefinition
    node_id: str

    def ctx(self) -> dict[str, Any]:
        return self.turn.context(self.session, self.defn)

    def render(self, template: str) -> str:
        return self.turn.expressions.render_text(template, self.ctx())

    def render_value(self, value: Any) -> Any:
        return self.turn.expressions.render_value(value, self.ctx())

    def evaluate(self, expression: str) -> Any:
        return self.turn.expressions.evaluate(expression, self.ctx())

    async def send(self, type_: str, content: dict[str, Any]) -> None:
        await self.turn.send(self.session, self.node_id, type_, content)

    async def begin_wait(self, timer_kind: str | None = None, after: timedelta | None = None) -> None:
        """The session starts waiting here: a new wait token; a timer when `after` is given."""
        rt = self.session.runtime
        rt["seq"] = self.session.seq + 1
        rt.pop("retries", None)
        if timer_kind is not None and after is not None:
            await self.turn.schedule(self.session, timer_kind, after, {"node": self.node_id})
