"""Nodes that decide, remember or jump: condition, set, goto, subflow, end, wait, handoff."""

from __future__ import annotations

from waflow.engine.flows.nodes import (
    ConditionNode,
    EndNode,
    GotoNode,
    HandoffNode,
    SetNode,
    SubflowNode,
    WaitNode,
)
from waflow.engine.runtime.executors.base import NodeCtx
from waflow.engine.runtime.steps import End, Goto, Step, Wait
from waflow.engine.runtime.turn import StepError


def _branch(c: NodeCtx, node: ConditionNode) -> str | None:
    for branch in node.branches:
        if c.evaluate(branch.if_):
            return branch.next
    return node.else_


async def enter_condition(c: NodeCtx, node: ConditionNode) -> Step:
    return Goto(await c.compute(_branch, c, node))


async def enter_set(c: NodeCtx, node: SetNode) -> Step:
    c.session.vars.update(await c.compute(c.render_in_order, node.vars))  # in order: later values see earlier ones
    return Goto(node.next)


async def _switch_flow(c: NodeCtx, flow_id: str) -> str:
    """Make the session run the active version of `flow_id`; returns that version's start node."""
    deployed = await c.turn.catalog.active_version(c.turn.conn, flow_id)
    c.session.flow_id = deployed.flow_id
    c.session.flow_version = deployed.content_hash
    for name, value in deployed.definition.vars.items():
        c.session.vars.setdefault(name, value)
    return deployed.definition.start


async def enter_goto(c: NodeCtx, node: GotoNode) -> Step:
    if node.flow is None:
        return Goto(node.next)
    start = await _switch_flow(c, node.flow)
    return Goto(node.node or start)


async def enter_subflow(c: NodeCtx, node: SubflowNode) -> Step:
    stack = c.session.runtime.setdefault("stack", [])
    if len(stack) >= c.turn.config.max_call_depth:
        raise StepError(f"sub-flows nested deeper than {c.turn.config.max_call_depth}")
    start_vars = await c.compute(lambda: {name: c.render_value(value) for name, value in node.vars.items()})
    stack.append(
        {
            "flow": c.session.flow_id,
            "version": c.session.flow_version,
            "node": c.node_id,
            "vars": c.session.vars,
            "save_as": node.save_as,
        }
    )
    c.session.vars = {}
    start = await _switch_flow(c, node.flow)
    c.session.vars.update(start_vars)
    return Goto(node.node or start)


async def enter_end(c: NodeCtx, node: EndNode) -> Step:
    return End(node.reason or "completed")


async def enter_wait(c: NodeCtx, node: WaitNode) -> Step:
    await c.begin_wait("wait", node.duration)
    c.session.runtime["wake_at"] = (c.turn.now + node.duration).isoformat()
    return Wait("timer")


def _handoff_texts(c: NodeCtx, node: HandoffNode) -> tuple[str | None, str | None]:
    return (
        c.render(node.text) if node.text is not None else None,
        c.render(node.note) if node.note is not None else None,
    )


async def enter_handoff(c: NodeCtx, node: HandoffNode) -> Step:
    text, note = await c.compute(_handoff_texts, c, node)
    if text is not None:
        await c.send("text", {"body": text})
    await c.begin_wait("handoff_timeout", node.timeout)
    c.session.runtime["handoff"] = {
        "queue": node.queue,
        "note": note,
        "then": node.then,
        "at": c.turn.now.isoformat(),
    }
    return Wait("agent")
