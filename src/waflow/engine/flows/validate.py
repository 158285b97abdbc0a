"""`validate_flow`: everything wrong with a loaded flow, errors and warnings, each with node and field.

Checks: the start node and every transition target exist; no node but `end` is a dead end;
unreachable nodes; cycles that never wait for the user or a timer; WhatsApp's limits on
buttons, lists and texts; duplicate button and row ids; every template and expression compiles
in the sandbox; regexes compile in RE2 and are not too complex (`flows.regex`); question rules
make sense; http settings; triggers; jumps into other flows (when those flows are given); sending
after a long wait (the 24 h window).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from datetime import timedelta

from waflow.engine.flows import limits
from waflow.engine.flows.definition import FlowDefinition
from waflow.engine.flows.durations import format_duration
from waflow.engine.flows.expr_check import check_expressions
from waflow.engine.flows.expressions import ExpressionEngine, is_templated, static_text
from waflow.engine.flows.graph import busy_cycles, reachable
from waflow.engine.flows.nodes import (
    SENDING_TYPES,
    ButtonsNode,
    ConditionNode,
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
from waflow.engine.flows.problems import FlowProblem, Severity, error, warning
from waflow.engine.flows.regex import pattern_problem
from waflow.engine.flows.rules import ChoiceRule, DateRule, NumberRule, RegexRule, TextRule
from waflow.engine.flows.triggers import KeywordTrigger, RegexTrigger

MAX_HTTP_TIMEOUT = timedelta(seconds=60)
SERVICE_WINDOW = timedelta(hours=24)
_TEMPLATE_NAME = re.compile(r"^[a-z0-9_]+$")


def validate_flow(
    defn: FlowDefinition,
    *,
    known_flows: Mapping[str, FlowDefinition] | None = None,
    engine: ExpressionEngine | None = None,
) -> list[FlowProblem]:
    """Every problem of `defn`, errors first then warnings, each in flow order.

    `known_flows` (flow id → definition) lets `goto`/`subflow` jumps be checked against their targets.
    """
    problems: list[FlowProblem] = []
    problems += _check_start(defn)
    problems += _check_targets(defn)
    for node_id, node in defn.nodes.items():
        problems += _check_exits(node_id, node)
        problems += _check_node(node_id, node, known_flows)
    problems += _check_reachability(defn)
    problems += _check_cycles(defn)
    problems += _check_window(defn)
    problems += _check_triggers(defn)
    problems += check_expressions(defn, engine)
    order = {node_id: i for i, node_id in enumerate(defn.nodes)}
    problems.sort(key=lambda p: (p.severity is not Severity.ERROR, p.node is not None, order.get(p.node or "", 0)))
    return problems


def has_errors(problems: Iterable[FlowProblem]) -> bool:
    return any(p.is_error for p in problems)


def _check_start(defn: FlowDefinition) -> Iterable[FlowProblem]:
    if defn.start not in defn.nodes:
        yield error(
            "unknown-start", f"start node {defn.start!r} does not exist{_suggest(defn.start, defn)}", path=("start",)
        )


def _suggest(name: str, defn: FlowDefinition) -> str:
    close = difflib.get_close_matches(name, list(defn.nodes), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _check_targets(defn: FlowDefinition) -> Iterable[FlowProblem]:
    for source, t in defn.edges():
        if t.target not in defn.nodes:
            yield error(
                "unknown-target", f"{t.target!r} is not a node of this flow{_suggest(t.target, defn)}", source, t.path
            )


def _dead_end(node_id: str, field: str = "next") -> FlowProblem:
    return error(
        "missing-transition",
        f"no '{field}': after this node the flow has nowhere to go (end it with an `end` node)",
        node_id,
        (field,),
    )


def _check_exits(node_id: str, node: Node) -> Iterable[FlowProblem]:
    """A node that is not `end` needs a way out."""
    match node:
        case MessageNode() | SetNode() | HttpNode() | WaitNode() | SubflowNode() | QuestionNode():
            if node.next is None:
                yield _dead_end(node_id)
        case ButtonsNode():
            for i, button in enumerate(node.buttons):
                if button.next is None and node.next is None:
                    yield error(
                        "missing-transition",
                        f"button {button.id!r} leads nowhere (no 'next' here or on the node)",
                        node_id,
                        ("buttons", i, "next"),
                    )
        case ListNode():
            for s, r, row in node.rows():
                if row.next is None and node.next is None:
                    yield error(
                        "missing-transition",
                        f"row {row.id!r} leads nowhere (no 'next' here or on the node)",
                        node_id,
                        ("sections", s, "rows", r, "next"),
                    )
        case TemplateNode():
            if node.next is None and not node.replies:
                yield _dead_end(node_id)
        case ConditionNode():
            if node.else_ is None:
                yield error(
                    "missing-transition",
                    "no 'else': when no branch matches the flow has nowhere to go",
                    node_id,
                    ("else",),
                )
        case _:
            return


def _check_node(node_id: str, node: Node, known_flows: Mapping[str, FlowDefinition] | None) -> Iterable[FlowProblem]:
    if isinstance(node, ButtonsNode | ListNode | QuestionNode | TemplateNode):
        if node.on_timeout is not None and node.timeout is None:
            yield warning("timeout", "'on_timeout' has no effect without 'timeout'", node_id, ("on_timeout",))
        if node.timeout is not None and node.on_timeout is None:
            yield warning("timeout", "no 'on_timeout': when the timeout passes the session ends", node_id, ("timeout",))
    match node:
        case MessageNode():
            yield from limits.check_message(node_id, node)
        case ButtonsNode():
            yield from limits.check_buttons(node_id, node)
        case ListNode():
            yield from limits.check_list(node_id, node)
        case QuestionNode():
            yield from limits.check_question(node_id, node)
            yield from _check_rule(node_id, node)
            if node.on_fail is None:
                yield warning(
                    "no-on-fail",
                    f"no 'on_fail': after {node.retries + 1} refused answers the session ends",
                    node_id,
                    ("on_fail",),
                )
        case TemplateNode():
            if not _TEMPLATE_NAME.match(node.name):
                yield warning("template-name", "template names are lowercase letters, digits and _", node_id, ("name",))
            if node.replies and node.next is not None:
                yield warning(
                    "template-next", "with 'replies' the node waits for a tap; 'next' is not used", node_id, ("next",)
                )
        case HttpNode():
            yield from _check_http(node_id, node)
        case HandoffNode():
            yield from limits.check_handoff(node_id, node)
        case GotoNode() | SubflowNode():
            yield from _check_jump(node_id, node, known_flows)
        case _:
            return


def _check_rule(node_id: str, node: QuestionNode) -> Iterable[FlowProblem]:
    rule = node.validate_
    path = ("validate", rule.kind)
    if isinstance(rule, RegexRule):
        problem = pattern_problem(rule.regex)
        if problem is not None:
            yield error("bad-regex", f"invalid regex {rule.regex[:80]!r}: {problem}", node_id, path)
    elif isinstance(rule, NumberRule) and None not in (rule.number.min, rule.number.max):
        if rule.number.min > rule.number.max:  # type: ignore[operator]
            yield error("bad-rule", "'min' is greater than 'max'", node_id, path)
    elif isinstance(rule, TextRule) and rule.text.min_length > rule.text.max_length:
        yield error("bad-rule", "'min_length' is greater than 'max_length'", node_id, path)
    elif isinstance(rule, DateRule):
        options = rule.date
        if None not in (options.min_days, options.max_days) and options.min_days > options.max_days:  # type: ignore[operator]
            yield error("bad-rule", "'min_days' is greater than 'max_days'", node_id, path)
        for i, fmt in enumerate(options.formats):
            if "%" not in fmt:
                yield error("bad-rule", f"date format {fmt!r} has no % directive", node_id, (*path, "formats", i))
    elif isinstance(rule, ChoiceRule):
        lowered = [c.strip().casefold() for c in rule.choice]
        if len(set(lowered)) != len(lowered):
            yield warning("duplicate-choice", "the same choice is listed twice", node_id, path)


def _check_http(node_id: str, node: HttpNode) -> Iterable[FlowProblem]:
    if node.timeout > MAX_HTTP_TIMEOUT:
        yield error(
            "http-timeout",
            f"timeout over {int(MAX_HTTP_TIMEOUT.total_seconds())}s holds the conversation",
            node_id,
            ("timeout",),
        )
    url = node.url
    head = url if not is_templated(url) else url[: min(url.find(m) for m in ("{{", "{%") if m in url)]
    if head and not re.match(r"^https?://", head, re.IGNORECASE) and not (is_templated(url) and head == ""):
        yield error("bad-url", "the URL must start with http:// or https://", node_id, ("url",))
    if not static_text(url).strip() and not is_templated(url):
        yield error("bad-url", "the URL is empty", node_id, ("url",))
    if node.method in ("GET", "HEAD") and (node.body is not None or node.json_ is not None):
        yield warning("http-body", f"a {node.method} request with a body", node_id, ("body" if node.body else "json",))
    if node.on_error is None:
        yield warning("no-on-error", "no 'on_error': a failed call ends the session", node_id, ("on_error",))


def _check_jump(
    node_id: str, node: GotoNode | SubflowNode, known: Mapping[str, FlowDefinition] | None
) -> Iterable[FlowProblem]:
    if node.flow is None or known is None:
        return
    target = known.get(node.flow)
    if target is None:
        yield warning(
            "unknown-flow", f"flow {node.flow!r} is not among the flows validated with this one", node_id, ("flow",)
        )
    elif node.node is not None and node.node not in target.nodes:
        yield error("unknown-target", f"flow {node.flow!r} has no node {node.node!r}", node_id, ("node",))


def _check_reachability(defn: FlowDefinition) -> Iterable[FlowProblem]:
    if defn.start not in defn.nodes:
        return
    seen = reachable(defn)
    for node_id in defn.nodes:
        if node_id not in seen:
            yield warning(
                "unreachable", f"node {node_id!r} cannot be reached from the start node {defn.start!r}", node_id
            )


def _check_cycles(defn: FlowDefinition) -> Iterable[FlowProblem]:
    for cycle in busy_cycles(defn):
        loop = " → ".join([*cycle, cycle[0]])
        calls = [n for n in cycle if isinstance(defn.nodes[n], SubflowNode)]
        if calls:
            yield warning("busy-cycle", f"the cycle {loop} waits only if sub-flow(s) {', '.join(calls)} wait", cycle[0])
        else:
            yield error(
                "busy-cycle",
                f"the cycle {loop} never waits for the user or a timer: the session could loop "
                "forever (put a question, buttons, list or wait node in it)",
                cycle[0],
            )


def _check_window(defn: FlowDefinition) -> Iterable[FlowProblem]:
    """After a wait of 24 h or more the service window may be closed: only templates are sure to deliver."""
    for node_id, node in defn.nodes.items():
        if not isinstance(node, WaitNode) or node.duration < SERVICE_WINDOW or node.next not in defn.nodes:
            continue
        for target in _next_senders(defn, node.next):
            sender = defn.nodes[target]
            if sender.type != "template" and getattr(sender, "on_failed", None) is None:
                yield warning(
                    "service-window",
                    f"after waiting {format_duration(node.duration)} the 24 h window may be closed: "
                    f"{target!r} ({sender.type}) may fail; send a template or set 'on_failed' there",
                    node_id,
                    ("duration",),
                )


def _next_senders(defn: FlowDefinition, start: str) -> list[str]:
    """The first sending nodes reached from `start` through nodes that do not send or wait."""
    found: list[str] = []
    seen = {start}
    queue = [start]
    while queue:
        node_id = queue.pop(0)
        node = defn.nodes[node_id]
        if node.type in SENDING_TYPES:
            found.append(node_id)
            continue
        if node.waits:
            continue
        for t in node.transitions():
            if t.target in defn.nodes and t.target not in seen:
                seen.add(t.target)
                queue.append(t.target)
    return found


def _check_triggers(defn: FlowDefinition) -> Iterable[FlowProblem]:
    if not defn.triggers:
        yield warning("no-triggers", "no triggers: only the API can start this flow", path=("triggers",))
    seen: set[str] = set()
    for i, trigger in enumerate(defn.triggers):
        if isinstance(trigger, RegexTrigger):
            problem = pattern_problem(trigger.regex, ignore_case=True)
            if problem is not None:
                yield error(
                    "bad-regex", f"invalid regex {trigger.regex[:80]!r}: {problem}", path=("triggers", i, "regex")
                )
        elif isinstance(trigger, KeywordTrigger):
            for j, word in enumerate(trigger.keyword):
                key = word.strip().casefold()
                if key in seen:
                    yield warning(
                        "duplicate-keyword", f"keyword {word!r} is listed twice", path=("triggers", i, "keyword", j)
                    )
                seen.add(key)
