"""Node executors: `enter` runs a node when the flow reaches it; `reply` applies the user's message to the
node a session waits at. Each answers a `Step`."""

from __future__ import annotations

from waflow.canonical import InboundMessage
from waflow.engine.flows.nodes import (
    ButtonsNode,
    ConditionNode,
    EndNode,
    GotoNode,
    HandoffNode,
    HttpNode,
    ListNode,
    MessageNode,
    Node,
    QuestionNode,
    SetNode,
    SubflowNode,
    TemplateNode,
    WaitNode,
)
from waflow.engine.runtime.executors.base import NodeCtx
from waflow.engine.runtime.executors.control import (
    enter_condition,
    enter_end,
    enter_goto,
    enter_handoff,
    enter_set,
    enter_subflow,
    enter_wait,
)
from waflow.engine.runtime.executors.http import enter_http, http_result
from waflow.engine.runtime.executors.send import (
    enter_buttons,
    enter_list,
    enter_message,
    enter_question,
    enter_template,
    reply_buttons,
    reply_list,
    reply_question,
    reply_template,
)
from waflow.engine.runtime.steps import Step, Wait

__all__ = ["NodeCtx", "enter", "http_result", "reply"]


async def enter(c: NodeCtx, node: Node) -> Step:
    match node:
        case MessageNode():
            return await enter_message(c, node)
        case ButtonsNode():
            return await enter_buttons(c, node)
        case ListNode():
            return await enter_list(c, node)
        case QuestionNode():
            return await enter_question(c, node)
        case TemplateNode():
            return await enter_template(c, node)
        case ConditionNode():
            return await enter_condition(c, node)
        case SetNode():
            return await enter_set(c, node)
        case HttpNode():
            return await enter_http(c, node)
        case WaitNode():
            return await enter_wait(c, node)
        case HandoffNode():
            return await enter_handoff(c, node)
        case GotoNode():
            return await enter_goto(c, node)
        case SubflowNode():
            return await enter_subflow(c, node)
        case EndNode():
            return await enter_end(c, node)
    raise TypeError(f"no executor for {type(node).__name__}")


async def reply(c: NodeCtx, node: Node, msg: InboundMessage) -> Step:
    """The user's message to the node the session waits at (nodes that do not take replies keep waiting)."""
    match node:
        case ButtonsNode():
            return await reply_buttons(c, node, msg)
        case ListNode():
            return await reply_list(c, node, msg)
        case QuestionNode():
            return await reply_question(c, node, msg)
        case TemplateNode():
            return await reply_template(c, node, msg)
        case HandoffNode():
            return Wait("agent")
    return Wait("timer")
