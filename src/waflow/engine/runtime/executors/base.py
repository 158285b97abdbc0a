"""`NodeCtx`: what a node executor works with — the turn, the session, the flow version, the node id."""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

from waflow.engine.flows.definition import FlowDefinition
from waflow.engine.flows.sandbox import run_bounded
from waflow.engine.runtime.state import SessionState
from waflow.engine.runtime.turn import Turn

T = TypeVar("T")


@dataclass(slots=True)
class NodeCtx:
    turn: Turn
    session: SessionState
    defn: FlowDefinition
    node_id: str

    def ctx(self, extra_vars: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The expression context; `extra_vars` over the session's (values a node computes in order)."""
        ctx = self.turn.context(self.session, self.defn)
        if extra_vars:
            ctx["vars"].update(extra_vars)  # `make_context` copied the session's vars
        return ctx

    def render(self, template: str) -> str:
        return self.turn.expressions.render_text(template, self.ctx())

    def render_value(self, value: Any, extra_vars: Mapping[str, Any] | None = None) -> Any:
        return self.turn.expressions.render_value(value, self.ctx(extra_vars))

    def evaluate(self, expression: str) -> Any:
        return self.turn.expressions.evaluate(expression, self.ctx())

    def render_in_order(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """Render `values` one after the other, each seeing the ones before it as `vars.<name>` (set, save)."""
        out: dict[str, Any] = {}
        for name, value in values.items():
            out[name] = self.render_value(value, out)
        return out

    def compute(self, fn: Callable[..., T], *args: Any) -> Coroutine[Any, Any, T]:
        """`await c.compute(fn, *args)`: `fn(*args)`, which renders templates and changes nothing (it may run
        twice): on the event loop while it is cheap, in a worker thread once it is not (`sandbox.run_bounded`).
        Executors render through this."""
        return run_bounded(fn, *args)

    async def send(self, type_: str, content: dict[str, Any]) -> None:
        await self.turn.send(self.session, self.node_id, type_, content)

    async def begin_wait(self, timer_kind: str | None = None, after: timedelta | None = None) -> None:
        """The session starts waiting here: a new wait token; a timer when `after` is given."""
        rt = self.session.runtime
        rt["seq"] = self.session.seq + 1
        rt.pop("retries", None)
        if timer_kind is not None and after is not None:
            await self.turn.schedule(self.session, timer_kind, after, {"node": self.node_id})
