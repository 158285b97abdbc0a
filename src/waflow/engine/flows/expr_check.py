"""Every template and expression of a flow, compiled in the sandbox at validation time.

Reports syntax errors and refused constructs (errors), names outside the context, `response`
outside an http node's `save`, and `vars.<name>` that nothing in the flow ever sets (warnings).
A template that reads nothing of the context (its work is the same for every message) is also run once,
under the sandbox's limits: one that goes over its work budget or its time is an error here rather than a
failure of every conversation that reaches it (`over-limit`; the trial runs of one flow have 0.5 s together).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from waflow.engine.flows.definition import FlowDefinition
from waflow.engine.flows.expressions import (
    CONTEXT_NAMES,
    CompiledExpression,
    CompiledTemplate,
    ExpressionEngine,
    ExpressionError,
    default_engine,
    references,
)
from waflow.engine.flows.nodes import (
    ButtonsNode,
    ConditionNode,
    HandoffNode,
    HttpNode,
    ListNode,
    Media,
    MessageNode,
    Node,
    QuestionNode,
    SetNode,
    SubflowNode,
    TemplateNode,
)
from waflow.engine.flows.problems import FlowProblem, error, warning
from waflow.engine.flows.sandbox import DEFAULT_LIMITS, ExpressionLimits, expression_turn

Path = tuple[str | int, ...]
Item = tuple[Path, str, bool]  # (path, source, is_expression)
TRIAL_SECONDS = 0.5  # the trial runs of one flow's context-free templates, together


def _leaves(path: Path, value: Any) -> Iterator[Item]:
    if isinstance(value, str):
        yield path, value, False
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _leaves((*path, str(key)), item)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _leaves((*path, i), item)


def _media(path: Path, media: Media | None) -> Iterator[Item]:
    if media is not None:
        for field in ("link", "caption", "filename"):
            yield from _leaves((*path, field), getattr(media, field))


def sources(node: Node) -> Iterator[Item]:
    """Every templated string (and condition expression) of a node, with its path."""
    match node:
        case MessageNode():
            yield from _leaves(("text",), node.text)
            for kind in ("image", "video", "audio", "document", "sticker"):
                yield from _media((kind,), getattr(node, kind))
            if node.location is not None:
                yield from _leaves(("location",), node.location.model_dump(exclude_none=True))
            yield from _leaves(("contacts",), node.contacts)
        case ButtonsNode():
            yield from _leaves(("text",), node.text)
            yield from _leaves(("footer",), node.footer)
            yield from (
                _leaves(("header",), node.header) if isinstance(node.header, str) else _media(("header",), node.header)
            )
            for i, button in enumerate(node.buttons):
                yield ("buttons", i, "title"), button.title, False
        case ListNode():
            for field in ("text", "button", "header", "footer"):
                yield from _leaves((field,), getattr(node, field))
            for s, section in enumerate(node.sections):
                yield from _leaves(("sections", s, "title"), section.title)
                for r, row in enumerate(section.rows):
                    yield from _leaves(("sections", s, "rows", r, "title"), row.title)
                    yield from _leaves(("sections", s, "rows", r, "description"), row.description)
        case QuestionNode():
            yield from _leaves(("text",), node.text)
            yield from _leaves(("retry_text",), node.retry_text)
        case TemplateNode():
            yield from _leaves(("params",), node.params)
            yield from (
                _leaves(("header",), node.header) if isinstance(node.header, str) else _media(("header",), node.header)
            )
            yield from _leaves(("components",), node.components)
        case ConditionNode():
            for i, branch in enumerate(node.branches):
                yield ("branches", i, "if"), branch.if_, True
        case SetNode():
            yield from _leaves(("vars",), node.vars)
        case HttpNode():
            for field in ("url", "headers", "query", "body", "save"):
                yield from _leaves((field,), getattr(node, field))
            yield from _leaves(("json",), node.json_)
        case HandoffNode():
            yield from _leaves(("text",), node.text)
            yield from _leaves(("note",), node.note)
        case SubflowNode():
            yield from _leaves(("vars",), node.vars)
        case _:
            return


def variables_set(defn: FlowDefinition) -> set[str]:
    """Every variable the flow itself sets (defaults, `save_as`, `set`, http `save`)."""
    names = set(defn.vars)
    for node in defn.nodes.values():
        save_as = getattr(node, "save_as", None)
        if save_as:
            names.add(save_as)
        if isinstance(node, SetNode):
            names.update(node.vars)
        if isinstance(node, HttpNode):
            names.update(node.save)
    return names


def _trial(engine: ExpressionEngine, compiled: CompiledTemplate | CompiledExpression) -> ExpressionError | None:
    """Run a template that reads nothing of the context; the limit it went over, if it did."""
    try:
        if isinstance(compiled, CompiledTemplate):
            compiled.render({})
        else:
            compiled.evaluate({})
    except ExpressionError as exc:
        return exc if exc.limit in ("work", "time") else None
    return None


def check_expressions(defn: FlowDefinition, engine: ExpressionEngine | None = None) -> list[FlowProblem]:
    engine = engine or default_engine
    limits = ExpressionLimits(DEFAULT_LIMITS.work, DEFAULT_LIMITS.seconds, TRIAL_SECONDS)
    with expression_turn(limits):  # (a list: the account must not outlive this call)
        return list(_check_expressions(defn, engine))


def _check_expressions(defn: FlowDefinition, engine: ExpressionEngine) -> Iterable[FlowProblem]:
    known_vars = variables_set(defn)
    for node_id, node in defn.nodes.items():
        for path, source, is_expression in sources(node):
            if not is_expression and "{" not in source:
                continue
            compiled: CompiledTemplate | CompiledExpression
            try:
                compiled = engine.compile_expression(source) if is_expression else engine.compile_template(source)
            except ExpressionError as exc:
                yield error("bad-expression", f"{exc.problem} (in {source[:80]!r})", node_id, path)
                continue
            refs = references(compiled)
            if not refs.names - set(engine.env.globals) and ("{%" in source or "|" in source):
                over = _trial(engine, compiled)
                if over is not None:
                    yield error("over-limit", f"{over.problem} (in {source[:80]!r})", node_id, path)
                    continue
            for name in sorted(refs.names - set(CONTEXT_NAMES)):
                yield warning(
                    "unknown-name",
                    f"{name!r} is not defined here (use one of: {', '.join(CONTEXT_NAMES)})",
                    node_id,
                    path,
                )
            if "response" in refs.names and not (isinstance(node, HttpNode) and path[0] == "save"):
                yield warning("response-outside-http", "'response' only exists in an http node's 'save'", node_id, path)
            for var in sorted(refs.variables - known_vars):
                yield warning(
                    "unset-variable", f"vars.{var} is never set in this flow (it renders empty)", node_id, path
                )
