"""Templates (`"Hi {{ contact.name }}"`) and expressions (`vars.size == 'large'`) for flows.

Everything is compiled once (an LRU cache keyed by source) in the hardened sandbox of
`sandbox.py` and evaluated over a context of `contact`, `vars`, `message`, `response`, `flow`.
Undefined names and attributes are empty (`ChainableUndefined`): `{{ vars.missing.deep }}` → `""`.
Any problem — a syntax error, a refused operation, an exception while rendering, a limit of work or time
(`sandbox.ExpressionLimits`) — is raised as `ExpressionError`, naming the expression and the problem (and, for a
limit, which one: `limit`).
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jinja2 import TemplateSyntaxError, nodes
from jinja2.exceptions import SecurityError, TemplateError
from jinja2.parser import Parser
from jinja2.runtime import Undefined
from jinja2.utils import concat

from waflow.engine.flows.sandbox import FlowSandbox, LimitExceeded, RenderBudget, harden

CONTEXT_NAMES = ("contact", "vars", "message", "response", "flow")
MAX_SOURCE = 16_000
MAX_OUTPUT = 64_000
CACHE_SIZE = 4_096
_SINGLE = re.compile(r"^\s*\{\{(?P<inner>.*)\}\}\s*$", re.DOTALL)


class ExpressionError(Exception):
    """A template or expression that does not compile or cannot be evaluated."""

    def __init__(self, expression: str, problem: str, line: int | None = None, *, limit: str | None = None) -> None:
        self.expression = expression
        self.problem = problem
        self.line = line
        self.limit = limit  # work / time / turn_time when a limit stopped it
        shown = expression if len(expression) <= 120 else expression[:117] + "..."
        where = f" (line {line})" if line and "\n" in expression else ""
        super().__init__(f"in {shown!r}{where}: {problem}")


def _describe(exc: BaseException) -> str:
    if isinstance(exc, LimitExceeded):
        return f"limit exceeded: {exc}"
    if isinstance(exc, SecurityError):
        return f"refused: {exc}"
    if isinstance(exc, TemplateSyntaxError):
        return f"syntax error: {exc.message}"
    if isinstance(exc, RecursionError):
        return "nested or recursive too deeply"
    if isinstance(exc, MemoryError):
        return "out of memory"
    if isinstance(exc, TemplateError):
        return exc.message or type(exc).__name__
    return f"{type(exc).__name__}: {exc}"


def _error(source: str, exc: Exception) -> ExpressionError:
    return ExpressionError(source, _describe(exc), getattr(exc, "lineno", None), limit=getattr(exc, "limit", None))


def make_context(
    *,
    contact: Mapping[str, Any] | None = None,
    vars: Mapping[str, Any] | None = None,
    message: Mapping[str, Any] | None = None,
    response: Mapping[str, Any] | None = None,
    flow: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The evaluation context; missing parts are empty mappings."""
    return {
        "contact": dict(contact or {}),
        "vars": dict(vars or {}),
        "message": dict(message or {}),
        "response": dict(response or {}),
        "flow": dict(flow or {}),
    }


@dataclass(frozen=True, slots=True)
class CompiledTemplate:
    """A compiled text template; `native` is set when the whole template is one `{{ expression }}`."""

    source: str
    tree: nodes.Template
    _engine: ExpressionEngine
    _template: Any
    native: CompiledExpression | None

    def render(self, ctx: Mapping[str, Any], *, max_length: int = MAX_OUTPUT) -> str:
        return self._engine._render(self, ctx, max_length)


@dataclass(frozen=True, slots=True)
class CompiledExpression:
    """A compiled expression; call `evaluate(ctx)` for its value (undefined → `None`)."""

    source: str
    tree: nodes.Template
    _engine: ExpressionEngine
    _template: Any

    def evaluate(self, ctx: Mapping[str, Any]) -> Any:
        return self._engine._evaluate(self, ctx)

    def __call__(self, ctx: Mapping[str, Any]) -> Any:
        return self._engine._evaluate(self, ctx)


class ExpressionEngine:
    """One sandbox plus a bounded cache of compiled templates and expressions (thread-safe)."""

    def __init__(self, cache_size: int = CACHE_SIZE) -> None:
        self.env = FlowSandbox()
        self._cache: OrderedDict[tuple[str, str], CompiledTemplate | CompiledExpression | ExpressionError]
        self._cache = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    # --- compiling ---

    def _cached(self, kind: str, source: str) -> CompiledTemplate | CompiledExpression:
        key = (kind, source)
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
        if hit is None:
            try:
                hit = self._compile_template(source) if kind == "t" else self._compile_expression(source)
            except ExpressionError as exc:
                hit = exc
            with self._lock:
                self._cache[key] = hit
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        if isinstance(hit, ExpressionError):
            raise hit
        return hit

    def compile_template(self, source: str) -> CompiledTemplate:
        if not isinstance(source, str):
            raise ExpressionError(repr(source), "a template must be text")
        result = self._cached("t", source)
        assert isinstance(result, CompiledTemplate)
        return result

    def compile_expression(self, source: str) -> CompiledExpression:
        """Compile an expression; `"{{ x }}"` is accepted as `"x"`."""
        if not isinstance(source, str):
            raise ExpressionError(repr(source), "an expression must be text")
        result = self._cached("e", source)
        assert isinstance(result, CompiledExpression)
        return result

    def _check_source(self, source: str) -> None:
        if len(source) > MAX_SOURCE:
            raise ExpressionError(source, f"longer than {MAX_SOURCE} characters")

    def _compile_template(self, source: str) -> CompiledTemplate:
        self._check_source(source)
        try:
            tree = harden(self.env.parse(source))
            template = self.env.from_string(tree)
        except Exception as exc:  # syntax, refusal, recursion in the parser/compiler
            raise ExpressionError(source, _describe(exc), getattr(exc, "lineno", None)) from None
        native = None
        body = tree.body
        if (
            len(body) == 1
            and isinstance(body[0], nodes.Output)
            and len(body[0].nodes) == 1
            and not isinstance(body[0].nodes[0], nodes.TemplateData)
        ):
            match = _SINGLE.match(source)
            if match:
                native = self._compile_expression(match.group("inner"), shown=source)
        return CompiledTemplate(source, tree, self, template, native)

    def _compile_expression(self, source: str, *, shown: str | None = None) -> CompiledExpression:
        shown = shown or source
        self._check_source(source)
        match = _SINGLE.match(source)
        text = match.group("inner") if match and "{{" not in match.group("inner") else source
        try:
            parser = Parser(self.env, text, state="variable")
            expr = parser.parse_expression()
            if not parser.stream.eos:
                raise TemplateSyntaxError(
                    f"unexpected {parser.stream.current.value!r} after the expression",
                    parser.stream.current.lineno,
                )
            body: list[nodes.Node] = [nodes.Assign(nodes.Name("result", "store"), expr, lineno=1)]
            tree = harden(nodes.Template(body, lineno=1))
            tree.set_environment(self.env)
            template = self.env.from_string(tree)
        except Exception as exc:
            raise ExpressionError(shown, _describe(exc), getattr(exc, "lineno", None)) from None
        return CompiledExpression(shown, tree, self, template)

    # --- running ---

    def _render(self, compiled: CompiledTemplate, ctx: Mapping[str, Any], max_length: int) -> str:
        out: list[str] = []
        size = 0
        try:
            with RenderBudget():
                for chunk in compiled._template.generate(dict(ctx)):  # each `{{ }}` is charged (`_finalize`)
                    size += len(chunk)
                    if size > max_length:
                        raise ExpressionError(compiled.source, f"output longer than {max_length} characters")
                    out.append(chunk)
        except ExpressionError:
            raise
        except Exception as exc:
            raise _error(compiled.source, exc) from None
        return concat(out)

    def _evaluate(self, compiled: CompiledExpression, ctx: Mapping[str, Any]) -> Any:
        template = compiled._template
        try:
            with RenderBudget():
                context = template.new_context(dict(ctx))
                for _ in template.root_render_func(context):
                    pass
                value = context.vars["result"]
        except Exception as exc:
            raise _error(compiled.source, exc) from None
        if isinstance(value, Undefined):
            return None
        return value

    def render_text(self, template: str, ctx: Mapping[str, Any], *, max_length: int = MAX_OUTPUT) -> str:
        """Render a text template (a string without `{{`/`{%` is returned as it is)."""
        if isinstance(template, str) and "{" not in template:
            if len(template) > max_length:
                raise ExpressionError(template, f"output longer than {max_length} characters")
            return template
        return self.compile_template(template).render(ctx, max_length=max_length)

    def evaluate(self, expression: str, ctx: Mapping[str, Any]) -> Any:
        """The value of an expression (`vars.total > 20`); undefined → `None`."""
        return self.compile_expression(expression).evaluate(ctx)

    def render_value(self, value: Any, ctx: Mapping[str, Any]) -> Any:
        """Render every string inside `value` (dicts and lists too).

        A string that is exactly one `{{ expression }}` keeps the expression's type (a number
        stays a number); other strings are rendered as text; other values are returned as they are.
        """
        if isinstance(value, str):
            if "{" not in value:
                return value
            compiled = self.compile_template(value)
            if compiled.native is not None:
                return compiled.native.evaluate(ctx)
            return compiled.render(ctx)
        if isinstance(value, Mapping):
            return {key: self.render_value(item, ctx) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [self.render_value(item, ctx) for item in value]
        return value


default_engine = ExpressionEngine()


def render_text(template: str, ctx: Mapping[str, Any], *, max_length: int = MAX_OUTPUT) -> str:
    """Render a text template in the shared engine."""
    return default_engine.render_text(template, ctx, max_length=max_length)


def evaluate(expression: str, ctx: Mapping[str, Any]) -> Any:
    """Evaluate an expression in the shared engine."""
    return default_engine.evaluate(expression, ctx)


def render_value(value: Any, ctx: Mapping[str, Any]) -> Any:
    """Render every string inside a value in the shared engine (see `ExpressionEngine.render_value`)."""
    return default_engine.render_value(value, ctx)


def compile_template(source: str) -> CompiledTemplate:
    return default_engine.compile_template(source)


def compile_expression(source: str) -> CompiledExpression:
    return default_engine.compile_expression(source)


def is_templated(text: str) -> bool:
    """Whether a string contains template syntax (its final text is known only at runtime)."""
    return "{{" in text or "{%" in text


def static_text(text: str) -> str:
    """The literal part of a template (expressions and statements removed): a lower bound of its output."""
    return re.sub(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", "", text, flags=re.DOTALL)


@dataclass(frozen=True, slots=True)
class References:
    """What a template reads: top-level names, and `vars.<name>` variables."""

    names: frozenset[str]
    variables: frozenset[str]


def references(compiled: CompiledTemplate | CompiledExpression) -> References:
    """The context names and `vars.*` variables a compiled template or expression refers to."""
    from jinja2 import meta

    names = frozenset(n for n in meta.find_undeclared_variables(compiled.tree) if not n.startswith("waflow_"))
    variables: set[str] = set()
    for node in compiled.tree.find_all((nodes.Getattr, nodes.Getitem)):
        assert isinstance(node, nodes.Getattr | nodes.Getitem)
        target = node.node
        if isinstance(target, nodes.Name) and target.name == "vars":
            if isinstance(node, nodes.Getattr):
                variables.add(node.attr)
            elif isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
                variables.add(node.arg.value)
    return References(names, frozenset(variables))
