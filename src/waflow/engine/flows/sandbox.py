"""The Jinja2 sandbox flows run in: `ImmutableSandboxedEnvironment` with tighter limits.

On top of Jinja's sandbox (no `_private` attributes, no mutation of lists/dicts, no unsafe
callables) this refuses:

- methods of builtin values outside a small allowlist (`"x".center(10**9)`, `str.format` width tricks);
- `{% include/import/extends/macro/call %}` and recursive loops — a flow expression is one template;
- values that grow too large (`'a' * 10**9`, `9 ** 9 ** 9`, `'%999999999d' % 1`, concatenation bombs);
- more than `MAX_ITERATIONS` loop iterations per render (nested loops count together);
- `range()` longer than `MAX_RANGE`; filters outside an allowlist, and huge numeric filter arguments.

Limits are enforced while rendering (`SecurityError`), and most are also found statically at
compile time so that `validate_flow` reports them before a flow is deployed.
"""

from __future__ import annotations

import contextvars
import functools
import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, NoReturn

from jinja2 import ChainableUndefined, nodes
from jinja2.exceptions import SecurityError
from jinja2.filters import FILTERS as DEFAULT_FILTERS
from jinja2.runtime import Context, Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import Cycler, Joiner, Namespace
from jinja2.visitor import NodeTransformer

MAX_VALUE = 100_000  # characters of one string / items of one list produced inside a template
MAX_ITERATIONS = 10_000  # loop iterations per render, all loops together
MAX_RANGE = 10_000
MAX_INT_BITS = 4_096
MAX_FORMAT_WIDTH = 1_000
MAX_AST_DEPTH = 60


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_SAFE_METHODS: dict[type, frozenset[str]] = {
    str: _words(
        "lower upper title capitalize casefold swapcase strip lstrip rstrip startswith endswith "
        "split rsplit splitlines replace join find rfind index rindex count isdigit isalpha isalnum "
        "isnumeric isdecimal isspace islower isupper istitle partition rpartition removeprefix "
        "removesuffix"
    ),
    dict: frozenset({"get", "keys", "values", "items"}),
    list: frozenset({"index", "count"}),
    tuple: frozenset({"index", "count"}),
    int: frozenset({"real", "imag", "is_integer", "bit_length"}),
    float: frozenset({"real", "imag", "is_integer"}),
    bool: frozenset(),
}

SAFE_FILTERS = _words(
    "abs attr batch capitalize count d default dictsort e escape first float forceescape "
    "groupby int items join last length list lower map max min reject rejectattr replace "
    "reverse round safe select selectattr slice sort string striptags sum title tojson trim "
    "truncate unique upper urlencode urlize wordcount filesizeformat"
)
FORBIDDEN_NODES: dict[type[nodes.Node], str] = {
    nodes.Extends: "extends",
    nodes.Include: "include",
    nodes.Import: "import",
    nodes.FromImport: "import",
    nodes.Macro: "macro",
    nodes.CallBlock: "call",
    nodes.Block: "block",
}
_BLOCKED_NAMES = frozenset({"mro", "format", "format_map", "gi_frame", "gi_code", "cr_frame", "f_globals"})


class _Budget:
    __slots__ = ("iterations",)

    def __init__(self) -> None:
        self.iterations = MAX_ITERATIONS


_budget: contextvars.ContextVar[_Budget | None] = contextvars.ContextVar("waflow_expr_budget", default=None)


def refuse(message: str) -> NoReturn:
    raise SecurityError(message)


def _spend(count: int = 1) -> None:
    budget = _budget.get()
    if budget is None:
        return
    budget.iterations -= count
    if budget.iterations < 0:
        refuse(f"more than {MAX_ITERATIONS} loop iterations")


class RenderBudget:
    """Context manager: a fresh iteration budget for one render."""

    def __enter__(self) -> None:
        self._token = _budget.set(_Budget())

    def __exit__(self, *exc: object) -> None:
        _budget.reset(self._token)


def _weight(value: Any, limit: int = MAX_VALUE) -> int:
    """Characters plus items inside `value`, counting shared parts each time; stops past `limit`."""
    total = 0
    stack = [value]
    while stack and total <= limit:
        item = stack.pop()
        if isinstance(item, str):
            total += len(item)
        elif isinstance(item, list | tuple):
            total += len(item)
            if total <= limit:
                stack.extend(item)
        elif isinstance(item, dict):
            total += len(item)
            if total <= limit:
                stack.extend(item.keys())
                stack.extend(item.values())
    return total


def _check_size(value: Any, what: str = "a value") -> Any:
    if isinstance(value, str | list | tuple | dict) and _weight(value) > MAX_VALUE:
        refuse(f"{what} longer than {MAX_VALUE} would be produced")
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > MAX_INT_BITS:
        refuse(f"a number larger than {MAX_INT_BITS} bits would be produced")
    return value


def _items(value: Any) -> Any:
    """An iterable as a list, at most `MAX_VALUE` long (generators and ranges included)."""
    if isinstance(value, str | Undefined) or not isinstance(value, Iterable):
        return value
    out = []
    for item in value:
        out.append(item)
        if len(out) > MAX_VALUE:
            refuse(f"more than {MAX_VALUE} items")
    return out


def _bounded_iter(iterable: Any) -> Iterator[Any]:
    if isinstance(iterable, Undefined):
        return
    for item in iterable:
        _spend()
        yield item


def _bounded_concat(*parts: Any) -> str:
    total = 0
    out = []
    for part in parts:
        text = str(part)
        total += len(text)
        if total > MAX_VALUE:
            refuse(f"a string longer than {MAX_VALUE} would be produced by '~'")
        out.append(text)
    return "".join(out)


def _safe_range(*args: int) -> range:
    rng = range(*args)
    if len(rng) > MAX_RANGE:
        refuse(f"range() longer than {MAX_RANGE}")
    return rng


_PERCENT = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?[diouxXeEfFgGcrsa%]")


def _check_percent_format(template: str) -> None:
    for match in _PERCENT.finditer(template):
        for group in match.groups():
            if group == "*" or (group is not None and int(group) > MAX_FORMAT_WIDTH):
                refuse(f"a format width or precision over {MAX_FORMAT_WIDTH}")


def _guard_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    skip = 2 if getattr(func, "jinja_pass_arg", None) is not None else 1  # (env/context,) value

    @functools.wraps(func)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        for arg in (*args[skip:], *kwargs.values()):
            if isinstance(arg, int) and not isinstance(arg, bool) and abs(arg) > MAX_VALUE:
                refuse(f"filter {name!r} given a number over {MAX_VALUE}")
        value = args[skip - 1] if len(args) >= skip else None
        if name == "join" and len(args) > skip:
            items = _items(value)
            if len(str(args[skip])) * len(items) > MAX_VALUE:
                refuse(f"a string longer than {MAX_VALUE} would be produced by 'join'")
            args = (*args[: skip - 1], items, *args[skip:])
        if name == "replace" and isinstance(value, str) and len(args) > skip + 1:
            old, new = str(args[skip]), str(args[skip + 1])
            growth = value.count(old) * max(0, len(new) - len(old)) if old else (len(value) + 1) * len(new)
            if len(value) + growth > MAX_VALUE:
                refuse(f"a string longer than {MAX_VALUE} would be produced by 'replace'")
        return _check_size(func(*args, **kwargs), f"filter {name!r}: a result")

    return guarded


class FlowSandbox(ImmutableSandboxedEnvironment):
    """The environment every flow template and expression is compiled in."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self) -> None:
        super().__init__(undefined=ChainableUndefined, autoescape=False, keep_trailing_newline=True)
        self.filters = {name: _guard_filter(name, DEFAULT_FILTERS[name]) for name in SAFE_FILTERS}
        self.globals = {
            "range": _safe_range,
            "dict": dict,
            "namespace": Namespace,
            "cycler": Cycler,
            "joiner": Joiner,
            "waflow_iter": _bounded_iter,
            "waflow_concat": _bounded_concat,
        }

    # --- attributes ---

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if attr.startswith("_") or attr in _BLOCKED_NAMES or isinstance(obj, type):
            return False
        for kind in type(obj).__mro__:
            allowed = _SAFE_METHODS.get(kind)
            if allowed is not None:
                return attr in allowed
        return super().is_safe_attribute(obj, attr, value)

    def unsafe_undefined(self, obj: Any, attribute: str) -> Undefined:
        refuse(f"access to attribute {attribute!r} of a {type(obj).__name__!r} value is not allowed")

    def getattr(self, obj: Any, attribute: str) -> Any:
        if isinstance(obj, Mapping) and attribute in obj:
            return obj[attribute]  # a key wins over a method of the same name (vars.items, vars.keys)
        if attribute.startswith("_") or attribute in _BLOCKED_NAMES:
            self.unsafe_undefined(obj, attribute)
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        if isinstance(argument, str):
            if isinstance(obj, Mapping) and argument in obj:
                return obj[argument]
            if argument.startswith("_") or argument in _BLOCKED_NAMES:
                self.unsafe_undefined(obj, argument)
        return super().getitem(obj, argument)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        target = getattr(__obj, "__self__", None)
        if isinstance(target, str | list | tuple | dict):
            for arg in (*args, *kwargs.values()):
                if isinstance(arg, int) and not isinstance(arg, bool) and abs(arg) > MAX_VALUE:
                    refuse(f"a number over {MAX_VALUE} passed to {getattr(__obj, '__name__', 'a method')}()")
            method = getattr(__obj, "__name__", "")
            if isinstance(target, str) and method == "join" and args:
                items = _items(args[0])
                if len(target) * len(items) > MAX_VALUE:
                    refuse(f"a string longer than {MAX_VALUE} would be produced by join()")
                args = (items, *args[1:])
            if isinstance(target, str) and method == "replace" and len(args) >= 2:
                old, new = str(args[0]), str(args[1])
                if len(target) + (target.count(old) + 1) * len(new) > MAX_VALUE:
                    refuse(f"a string longer than {MAX_VALUE} would be produced by replace()")
        return _check_size(super().call(__context, __obj, *args, **kwargs))

    # --- operators ---

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "**":
            _check_power(left, right)
        elif operator == "*":
            _check_product(left, right)
        elif operator == "+":
            sized = isinstance(left, str | list | tuple) and isinstance(right, str | list | tuple)
            if sized and len(left) + len(right) > MAX_VALUE:
                refuse(f"a value longer than {MAX_VALUE} would be produced by '+'")
        elif operator == "%" and isinstance(left, str):
            _check_percent_format(left)
        return _check_size(self.binop_table[operator](left, right))


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_power(base: Any, exponent: Any) -> None:
    big = _is_int(base) and _is_int(exponent) and exponent > 0 and abs(base) > 1
    if big and exponent * math.log2(abs(base)) > MAX_INT_BITS:
        refuse(f"{base} ** {exponent} is too large (over {MAX_INT_BITS} bits)")
    if isinstance(exponent, int | float) and abs(exponent) > MAX_INT_BITS:
        refuse(f"an exponent over {MAX_INT_BITS}")


def _check_product(left: Any, right: Any) -> None:
    for seq, count in ((left, right), (right, left)):
        if isinstance(seq, str | list | tuple) and _is_int(count) and len(seq) * max(count, 0) > MAX_VALUE:
            refuse(f"a value longer than {MAX_VALUE} would be produced by '*'")
    if _is_int(left) and _is_int(right) and left.bit_length() + right.bit_length() > MAX_INT_BITS:
        refuse(f"a number larger than {MAX_INT_BITS} bits would be produced by '*'")


# --- compile-time checks and rewriting --------------------------------------------------------------


class _Harden(NodeTransformer):
    """Route loops and `~` through the bounded helpers; refuse forbidden statements and private names."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        if node.recursive:
            refuse("recursive loops are not allowed")
        node = self.generic_visit(node)  # type: ignore[assignment]
        node.iter = _helper_call("waflow_iter", [node.iter], node.lineno)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        node = self.generic_visit(node)  # type: ignore[assignment]
        return _helper_call("waflow_concat", list(node.nodes), node.lineno)

    def visit_Getattr(self, node: nodes.Getattr) -> nodes.Node:
        _check_name(node.attr)
        return self.generic_visit(node)

    def visit_Getitem(self, node: nodes.Getitem) -> nodes.Node:
        if isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
            _check_name(node.arg.value)
        return self.generic_visit(node)

    def visit_Name(self, node: nodes.Name) -> nodes.Node:
        if node.name.startswith(("waflow_", "_")):
            refuse(f"the name {node.name!r} is reserved")
        return node

    def visit_Filter(self, node: nodes.Filter) -> nodes.Node:
        if node.name not in SAFE_FILTERS:
            refuse(f"the filter {node.name!r} is not available")
        # attr / map / selectattr / sort(attribute=...) name attributes in string arguments: the
        # same names a `.name` lookup may not use are refused here, so deploy-time checks see them
        named = [*node.args, *(kw.value for kw in node.kwargs)] if node.name in _ATTRIBUTE_FILTERS else []
        named += [kw.value for kw in node.kwargs if kw.key == "attribute"]
        for arg in named:
            if isinstance(arg, nodes.Const) and isinstance(arg.value, str):
                for part in arg.value.split("."):
                    _check_name(part)
        return self.generic_visit(node)

    def generic_visit(self, node: nodes.Node, *args: Any, **kwargs: Any) -> nodes.Node:
        for kind, word in FORBIDDEN_NODES.items():
            if isinstance(node, kind):
                refuse(f"{{% {word} %}} is not allowed in flow templates")
        return super().generic_visit(node, *args, **kwargs)


# filters whose string arguments name attributes to look up
_ATTRIBUTE_FILTERS = frozenset({"attr", "map", "selectattr", "rejectattr", "groupby"})


def _check_name(name: str) -> None:
    if name.startswith("_") or name in _BLOCKED_NAMES:
        refuse(f"access to {name!r} is not allowed")


def _helper_call(name: str, args: list[Any], lineno: int) -> nodes.Call:
    return nodes.Call(nodes.Name(name, "load", lineno=lineno), args, [], None, None, lineno=lineno)


def ast_depth(root: nodes.Node) -> int:
    deepest = 0
    stack: list[tuple[nodes.Node, int]] = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in node.iter_child_nodes())
    return deepest


def harden(tree: nodes.Template) -> nodes.Template:
    """Check and rewrite a parsed template in place (raises `SecurityError`)."""
    depth = ast_depth(tree)
    if depth > MAX_AST_DEPTH:
        refuse(f"nested {depth} levels deep (at most {MAX_AST_DEPTH})")
    result = _Harden().visit(tree)
    assert isinstance(result, nodes.Template)
    return result


def iter_names(tree: nodes.Node) -> Iterable[nodes.Node]:
    return tree.find_all((nodes.Name, nodes.Getattr, nodes.Getitem))
