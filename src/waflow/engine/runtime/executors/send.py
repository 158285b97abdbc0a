"""Sending nodes: message, buttons, list, question, template — entering them, and the user's reply to them."""

from __future__ import annotations

from typing import Any

from waflow.canonical import InboundMessage
from waflow.engine.flows.nodes import ButtonsNode, ListNode, MessageNode, QuestionNode, TemplateNode
from waflow.engine.runtime.answers import Rejected, check_answer
from waflow.engine.runtime.content import buttons_content, list_content, message_content, template_content
from waflow.engine.runtime.executors.base import NodeCtx
from waflow.engine.runtime.steps import End, Goto, Step, Wait


async def enter_message(c: NodeCtx, node: MessageNode) -> Step:
    type_, content = await c.compute(message_content, node, c.render, c.render_value)
    await c.send(type_, content)
    return Goto(node.next)


async def enter_buttons(c: NodeCtx, node: ButtonsNode) -> Step:
    await c.send("interactive", await c.compute(buttons_content, node, c.render))
    await c.begin_wait("reply_timeout", node.timeout)
    return Wait("reply")


async def enter_list(c: NodeCtx, node: ListNode) -> Step:
    await c.send("interactive", await c.compute(list_content, node, c.render))
    await c.begin_wait("reply_timeout", node.timeout)
    return Wait("reply")


async def enter_question(c: NodeCtx, node: QuestionNode) -> Step:
    await c.send("text", {"body": await c.compute(c.render, node.text)})
    await c.begin_wait("reply_timeout", node.timeout)
    return Wait("reply")


async def enter_template(c: NodeCtx, node: TemplateNode) -> Step:
    await c.send("template", await c.compute(template_content, node, c.render, c.render_value))
    if not node.replies:
        return Goto(node.next)
    await c.begin_wait("reply_timeout", node.timeout)
    return Wait("reply")


def _same(a: str | None, b: str) -> bool:
    return a is not None and a.strip().casefold() == b.strip().casefold()


def _pick(msg: InboundMessage, options: list[tuple[str, str, str | None]], c: NodeCtx) -> tuple[str, str | None] | None:
    """(id, next) of the option the user chose: by tapped id (payload), else by typed title."""
    for option_id, _title, target in options:
        if msg.payload is not None and msg.payload == option_id:
            return option_id, target
    for option_id, title, target in options:
        if _same(msg.text, c.render(title)):
            return option_id, target
    return None


async def _chosen(c: NodeCtx, save_as: str | None, choice: tuple[str, str | None]) -> Step:
    option_id, target = choice
    if save_as:
        c.session.vars[save_as] = option_id
    return Goto(target)


async def reply_buttons(c: NodeCtx, node: ButtonsNode, msg: InboundMessage) -> Step:
    choice = await c.compute(_pick, msg, [(b.id, b.title, b.next or node.next) for b in node.buttons], c)
    if choice is not None:
        return await _chosen(c, node.save_as, choice)
    if node.no_match is not None:
        return Goto(node.no_match)
    await c.send("interactive", await c.compute(buttons_content, node, c.render))  # ask again; the wait goes on
    return Wait("reply")


async def reply_list(c: NodeCtx, node: ListNode, msg: InboundMessage) -> Step:
    choice = await c.compute(_pick, msg, [(row.id, row.title, row.next or node.next) for _, _, row in node.rows()], c)
    if choice is not None:
        return await _chosen(c, node.save_as, choice)
    if node.no_match is not None:
        return Goto(node.no_match)
    await c.send("interactive", await c.compute(list_content, node, c.render))
    return Wait("reply")


async def reply_question(c: NodeCtx, node: QuestionNode, msg: InboundMessage) -> Step:
    try:
        value: Any = check_answer(node.validate_, msg, c.turn.now.date())
    except Rejected:
        rt = c.session.runtime
        rt["retries"] = int(rt.get("retries", 0)) + 1
        if rt["retries"] > node.retries:
            rt.pop("retries", None)
            return Goto(node.on_fail) if node.on_fail is not None else End("invalid_answer", hard=True)
        await c.send("text", {"body": await c.compute(c.render, node.retry_text or node.text)})
        return Wait("reply")
    c.session.vars[node.save_as] = value
    c.session.runtime.pop("retries", None)
    return Goto(node.next)


async def reply_template(c: NodeCtx, node: TemplateNode, msg: InboundMessage) -> Step:
    if msg.payload is not None and msg.payload in node.replies:
        return Goto(node.replies[msg.payload])
    for payload, target in node.replies.items():
        if _same(msg.text, payload):
            return Goto(target)
    if node.no_match is not None:
        return Goto(node.no_match)
    if node.next is not None:
        return Goto(node.next)
    return Wait("reply")
