"""The conversation state machine: idle → running → waiting (reply / timer / agent) → ended.

`Machine.drive` applies a `Step` to a session and keeps going through non-waiting nodes until the
session waits, ends, or pauses for an HTTP call — at most `step_limit` nodes per event (then the
session ends with reason `loop`). A failing expression or node ends the session with reason
`error` and the problem in `last_error`; nothing is raised to the worker. A template stopped by a limit
(work, time: `sandbox.ExpressionLimits`) is such an error — `last_error` names the node and the limit — and is
counted (`waflow_engine_expression_limits_total`). Leaving a sub-flow
(its end, or a `next` of None) returns to the caller's `next`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from waflow.canonical import InboundMessage
from waflow.engine.flows.definition import FlowDefinition
from waflow.engine.flows.expressions import ExpressionEngine, ExpressionError
from waflow.engine.runtime import executors
from waflow.engine.runtime.config import EngineConfig
from waflow.engine.runtime.deploy import Deployed, FlowCatalog, FlowNotFound
from waflow.engine.runtime.executors import NodeCtx
from waflow.engine.runtime.metrics import EXPRESSION_LIMITS
from waflow.engine.runtime.state import SessionState
from waflow.engine.runtime.steps import CallHttp, End, Goto, Step, Wait
from waflow.engine.runtime.turn import StepError, Turn

_NODE_ERRORS = (ExpressionError, StepError, FlowNotFound)
_LEAVING = ("wake_at", "handoff", "http")


def _node_error(node_id: str | None, exc: Exception) -> End:
    if isinstance(exc, ExpressionError) and exc.limit is not None:
        EXPRESSION_LIMITS.labels(exc.limit).inc()
    return End("error", hard=True, error=f"node {node_id!r}: {exc}")


class Machine:
    def __init__(self, config: EngineConfig, catalog: FlowCatalog, expressions: ExpressionEngine) -> None:
        self.config = config
        self.catalog = catalog
        self.expressions = expressions

    async def definition(self, turn: Turn, session: SessionState) -> FlowDefinition:
        return await self.catalog.version(turn.conn, session.flow_id, session.flow_version)

    async def node_ctx(self, turn: Turn, session: SessionState) -> tuple[NodeCtx, Any]:
        """The context and node of where the session is (`KeyError` if the node is gone)."""
        defn = await self.definition(turn, session)
        assert session.current_node is not None
        return NodeCtx(turn, session, defn, session.current_node), defn.nodes[session.current_node]

    # --- starting ---

    async def start(
        self, turn: Turn, deployed: Deployed, vars: dict[str, Any] | None = None, node: str | None = None
    ) -> SessionState:
        """A new session on `deployed`, run from its start node (the caller made sure none is active)."""
        defn = deployed.definition
        session = SessionState(
            id=None,
            contact_id=turn.contact.id,
            flow_id=deployed.flow_id,
            flow_version=deployed.content_hash,
            current_node=node or defn.start,
            vars={**defn.vars, **(vars or {})},
        )
        await turn.insert(session)
        await self.drive(turn, session, Goto(node or defn.start))
        return session

    # --- running ---

    async def drive(self, turn: Turn, session: SessionState, step: Step) -> None:
        """Apply `step` and run on until the session waits, ends or calls out; then save it."""
        while True:
            match step:
                case Wait(waiting_for=kind):
                    await self._wait(turn, session, kind)
                    break
                case CallHttp():
                    session.state, session.waiting_for = "running", "http"
                    break
                case End(reason=reason, hard=hard, error=error):
                    await self._leave(turn, session)
                    if error is not None:
                        session.last_error = error
                    target = None if hard else await self._return(turn, session)
                    if target is None:
                        await self.end(turn, session, reason)
                        break
                    step = Goto(target)
                case Goto(node=None):
                    step = End("completed")
                case Goto(node=str(node_id)):
                    await self._leave(turn, session)
                    if session.steps >= self.config.step_limit:
                        step = End("loop", hard=True, error=f"more than {self.config.step_limit} steps without "
                                   f"waiting (last node {node_id!r}): a loop?")  # fmt: skip
                        continue
                    step = await self.enter(turn, session, node_id)
        await turn.save(session)

    async def enter(self, turn: Turn, session: SessionState, node_id: str) -> Step:
        session.steps += 1
        session.current_node = node_id
        session.state, session.waiting_for = "running", None
        try:
            defn = await self.definition(turn, session)
            node = defn.nodes.get(node_id)
            if node is None:
                raise StepError(f"flow {session.flow_id!r} has no node {node_id!r}")
            return await executors.enter(NodeCtx(turn, session, defn, node_id), node)
        except _NODE_ERRORS as exc:
            return _node_error(node_id, exc)

    async def guarded(self, turn: Turn, session: SessionState, coro: Any) -> Step:
        """Await an executor's reply/result, turning a node error into an `error` end."""
        try:
            step: Step = await coro
        except _NODE_ERRORS as exc:
            return _node_error(session.current_node, exc)
        return step

    async def reply(self, turn: Turn, session: SessionState, msg: InboundMessage) -> None:
        """The user's message to the node the session waits at."""
        session.runtime["sent"] = []
        try:
            c, node = await self.node_ctx(turn, session)
        except (KeyError, FlowNotFound) as exc:
            await self.drive(turn, session, End("error", hard=True, error=f"cannot resume: {exc}"))
            return
        await self.drive(turn, session, await self.guarded(turn, session, executors.reply(c, node, msg)))

    async def resume(self, turn: Turn, session: SessionState, target: str | None, reason: str = "completed") -> None:
        """Move a waiting session on to `target` (None: end it with `reason`)."""
        session.runtime["sent"] = []
        await self.drive(turn, session, Goto(target) if target is not None else End(reason, hard=True))

    async def end(self, turn: Turn, session: SessionState, reason: str) -> None:
        await self._leave(turn, session)
        await turn.cancel_timers(session)
        session.state, session.waiting_for, session.end_reason = "ended", None, reason

    # --- internals ---

    async def _wait(self, turn: Turn, session: SessionState, kind: str) -> None:
        session.state = "handoff" if kind == "agent" else "waiting"
        session.waiting_for = kind
        defn = await self.definition(turn, session)
        timeout: timedelta = defn.session_timeout or self.config.session_timeout
        session.expires_at = turn.now + timeout

    async def _leave(self, turn: Turn, session: SessionState) -> None:
        """The session moves away from a waiting node: its timers and wait state go."""
        if session.state in ("waiting", "handoff") or session.runtime.get("timers"):
            await turn.cancel_timers(session)
        for key in _LEAVING:
            session.runtime.pop(key, None)

    async def _return(self, turn: Turn, session: SessionState) -> str | None:
        """Pop sub-flow frames until one has somewhere to go; None when the top flow is over."""
        stack: list[dict[str, Any]] = session.runtime.get("stack") or []
        while stack:
            frame = stack.pop()
            finished = session.vars
            session.flow_id, session.flow_version = frame["flow"], frame["version"]
            session.vars = dict(frame["vars"])
            if frame.get("save_as"):
                session.vars[frame["save_as"]] = finished
            session.current_node = frame["node"]
            try:
                caller = (await self.definition(turn, session)).nodes[frame["node"]]
            except (KeyError, FlowNotFound):
                continue
            target = getattr(caller, "next", None)
            if target is not None:
                return str(target)
        session.runtime.pop("stack", None)
        return None
