"""The Jinja2 sandbox flows run in: `ImmutableSandboxedEnvironment` with tighter limits.

On top of Jinja's sandbox (no `_private` attributes, no mutation of lists/dicts, no unsafe
callables) this refuses:

- methods of builtin values outside a small allowlist (`"x".center(10**9)`, `str.format` width tricks);
- `{% include/import/extends/macro/call %}` and recursive loops — a flow expression is one template;
- values that grow too large (`'a' * 10**9`, `9 ** 9 ** 9`, `'%999999999d' % 1`, concatenation bombs);
- more than `MAX_ITERATIONS` loop iterations per render (nested loops count together);
- `range()` longer than `MAX_RANGE`; filters outside an allowlist, and huge numeric filter arguments;
- more work than a budget (`ExpressionLimits.work`, 1,000,000 units by default), or more wall-clock time than
  a deadline (`ExpressionLimits.seconds`, 0.1 s; all the templates of one event together `turn_seconds`, 0.25 s).

The budget is charged by the work done, before it is done: each loop iteration (weighted by the literal text of
the loop's body), each filter and method call by the size of its input (a sort by n·log2 n), each operator by
its operands, each list / tuple / dict literal by its items and its size, each `{{ }}` output by its length, and
every value produced is measured (MAX_VALUE). So no single step is large, and the clock is looked at at each
charge: a template over budget stops within one bounded step of its limit (`LimitExceeded`, a `SecurityError`).

Limits are enforced while rendering (`SecurityError`), and most are also found statically at
compile time so that `validate_flow` reports them before a flow is deployed. `run_bounded` keeps heavy
renders off the event loop (see there).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import math
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

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
MAX_WORK = 500_000  # work units of one template or expression (see `charge`): about 50 ms of work
# what a unit is: roughly 0.1 µs of this machine's work. A loop iteration costs ITERATION, a filter or method
# call CALL, an item handled 1 (a sort n·log2 n), an item walked by a measure WALK, characters CHARS per unit
ITERATION = 8
CALL = 16
WALK = 2
CHARS = 16
LOOK_EVERY = 256  # units between two looks at the clock (a few microseconds of work)
MAX_SECONDS = 0.1  # wall clock of one template or expression
TURN_SECONDS = 0.25  # wall clock of all the templates and expressions of one event together
INLINE_WORK = 20_000  # what `run_bounded` lets a render do on the event loop before moving it to a thread
INLINE_SECONDS = 0.002
THREADS = 2  # threads for renders moved off the loop (one process; the budget bounds each)
T = TypeVar("T")


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


class LimitExceeded(SecurityError):
    """A template or expression went over its work budget or its time (`limit`: work, time, turn_time)."""

    def __init__(self, limit: str, message: str) -> None:
        super().__init__(message)
        self.limit = limit


class Offload(BaseException):  # a signal, not an error: an `except Exception` must not catch it
    """The inline slice of an `inline()` block is used up: run the same (pure) work again in a thread."""


@dataclass(frozen=True, slots=True)
class ExpressionLimits:
    """What one template or expression may do, and what all of one event's together may take."""

    work: int = MAX_WORK  # units: loop iterations (weighted by their literal text), items and characters handled
    seconds: float = MAX_SECONDS  # wall clock of one template or expression
    turn_seconds: float | None = TURN_SECONDS  # wall clock of all the templates of one event (None: unbounded)


DEFAULT_LIMITS = ExpressionLimits()


class _Account:
    """One event's templates together (`expression_turn`): the limits, and the time still available."""

    __slots__ = ("limits", "remaining")

    def __init__(self, limits: ExpressionLimits) -> None:
        self.limits = limits
        self.remaining = limits.turn_seconds


class _Slice:
    """The inline share of an `inline()` block: past it, the work moves to a thread (`Offload`)."""

    __slots__ = ("deadline", "work")

    def __init__(self, work: int, seconds: float) -> None:
        self.work = work
        self.deadline = time.perf_counter() + seconds


class _Budget:
    __slots__ = ("deadline", "iterations", "limits", "reason", "since_look", "slice", "work")

    def __init__(self, limits: ExpressionLimits, deadline: float, reason: str, slice_: _Slice | None) -> None:
        self.iterations = MAX_ITERATIONS
        self.work = limits.work
        self.limits = limits
        self.deadline = deadline
        self.reason = reason
        self.slice = slice_
        self.since_look = 0  # units charged since the clock was last looked at


_budget: contextvars.ContextVar[_Budget | None] = contextvars.ContextVar("waflow_expr_budget", default=None)
_account: contextvars.ContextVar[_Account | None] = contextvars.ContextVar("waflow_expr_account", default=None)
_slice: contextvars.ContextVar[_Slice | None] = contextvars.ContextVar("waflow_expr_slice", default=None)


def refuse(message: str) -> NoReturn:
    raise SecurityError(message)


def _exceeded(budget: _Budget, limit: str) -> NoReturn:
    limits = budget.limits
    if limit == "work":
        message = (
            f"more work than one template may do (a budget of {limits.work:,} units: loop iterations, calls, "
            "items and characters handled)"
        )
    elif limit == "time":
        message = f"took longer than one template may take ({limits.seconds:g} s)"
    else:
        message = f"the templates of this event took longer than {limits.turn_seconds:g} s together"
    raise LimitExceeded(limit, message)


def charge(units: int) -> None:
    """Charge `units` of work to the running render (nothing outside one) and look at its clock.

    Every place that does work in proportion to the size of a value charges it *before* doing it, so no single
    step can be large: the work of a render is bounded by its budget, and its wall clock by the deadline (plus at
    most one bounded step). The clock is looked at whenever `LOOK_EVERY` units have been charged since the last
    look (a few microseconds of work; a step that large at once looks at it at once).
    """
    budget = _budget.get()
    if budget is None:
        return
    budget.work -= units
    if budget.work < 0:
        _exceeded(budget, "work")
    share = budget.slice
    if share is not None:
        share.work -= units
        if share.work < 0:
            raise Offload
    budget.since_look += units
    if budget.since_look < LOOK_EVERY:
        return  # a few microseconds of work since the last look at the clock
    budget.since_look = 0
    now = time.perf_counter()
    if now > budget.deadline:
        _exceeded(budget, budget.reason)
    if share is not None and now > share.deadline:
        raise Offload


def _spend(count: int = 1, weight: int = 1) -> None:
    budget = _budget.get()
    if budget is None:
        return
    budget.iterations -= count
    if budget.iterations < 0:
        refuse(f"more than {MAX_ITERATIONS} loop iterations")
    charge(count * weight)


class RenderBudget:
    """Context manager: a fresh budget for one render (work, iterations, deadline), charged to the event's
    account (`expression_turn`) when there is one, and inside an `inline()` block to its slice."""

    __slots__ = ("_account", "_start", "_token")

    def __enter__(self) -> None:
        account = _account.get()
        limits = account.limits if account is not None else DEFAULT_LIMITS
        seconds, reason = limits.seconds, "time"
        if account is not None and account.remaining is not None:
            if account.remaining <= 0:
                raise LimitExceeded("turn_time", f"the templates of this event took longer than "
                                    f"{limits.turn_seconds:g} s together")  # fmt: skip
            if account.remaining < seconds:
                seconds, reason = account.remaining, "turn_time"
        self._account = account
        self._start = start = time.perf_counter()
        self._token = _budget.set(_Budget(limits, start + seconds, reason, _slice.get()))

    def __exit__(self, *exc: object) -> None:
        _budget.reset(self._token)
        account = self._account
        if account is not None and account.remaining is not None:
            account.remaining -= time.perf_counter() - self._start


class expression_turn:  # lower case: used like a function, `with expression_turn(limits):`
    """The templates evaluated inside (one event's) use `limits`, and share `limits.turn_seconds`."""

    __slots__ = ("_account", "_token")

    def __init__(self, limits: ExpressionLimits = DEFAULT_LIMITS) -> None:
        self._account = _Account(limits)

    def __enter__(self) -> None:
        self._token = _account.set(self._account)

    def __exit__(self, *exc: object) -> None:
        _account.reset(self._token)


class inline:  # lower case: used like a function, `with inline():`
    """Renders inside may use `work` units and `seconds` together; past that they raise `Offload` (see
    `run_bounded`)."""

    __slots__ = ("_slice", "_token")

    def __init__(self, work: int = INLINE_WORK, seconds: float = INLINE_SECONDS) -> None:
        self._slice = _Slice(work, seconds)

    def __enter__(self) -> None:
        self._token = _slice.set(self._slice)

    def __exit__(self, *exc: object) -> None:
        _slice.reset(self._token)


_POOL: concurrent.futures.ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _pool() -> concurrent.futures.ThreadPoolExecutor:
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = concurrent.futures.ThreadPoolExecutor(max_workers=THREADS, thread_name_prefix="waflow-expr")
        return _POOL


async def run_bounded(fn: Callable[..., T], *args: Any) -> T:
    """`fn(*args)` (pure: it only renders and reads), first on the event loop within a small slice; when the slice
    is used up, again from the start in a worker thread, under the full budget and deadline.

    Nearly every template costs microseconds and stays on the loop; a heavy one holds the loop at most for the
    slice (`INLINE_SECONDS`) and then runs beside it. The thread is not what bounds the work — the budget is: the
    thread only keeps the loop (webhooks, `/healthz`, other conversations) answering meanwhile.
    """
    token = _slice.set(_Slice(INLINE_WORK, INLINE_SECONDS))  # `with inline():`, without its frames (hot path)
    try:
        return fn(*args)
    except Offload:
        pass
    finally:
        _slice.reset(token)
    loop = asyncio.get_running_loop()
    context = contextvars.copy_context()
    return await loop.run_in_executor(_pool(), functools.partial(context.run, fn, *args))


def _size(value: Any) -> int:
    """The cost of touching a value once: its characters (`CHARS` per unit) or its items, at least 1."""
    if isinstance(value, str | bytes):
        return len(value) // CHARS + 1
    if isinstance(value, list | tuple | dict | set | frozenset | range):
        return len(value) + 1
    return 1


def _items_of(value: Any) -> int:
    return len(value) if isinstance(value, list | tuple | dict | set | frozenset | range) else 1


def _measure(value: Any, limit: int = MAX_VALUE) -> tuple[int, int]:
    """(weight, cost): characters plus items inside `value`, counting shared parts each time (stops past `limit`),
    and the work units of finding that out."""
    total = steps = chars = 0
    stack = [value]
    while stack and total <= limit:
        item = stack.pop()
        steps += 1
        if isinstance(item, str):
            total += len(item)
            chars += len(item)
        elif isinstance(item, list | tuple):
            total += len(item)
            if total <= limit:
                stack.extend(item)
        elif isinstance(item, dict):
            total += len(item)
            if total <= limit:
                stack.extend(item.keys())
                stack.extend(item.values())
    return total, WALK * steps + chars // CHARS


def _weight(value: Any, limit: int = MAX_VALUE) -> int:
    """Characters plus items inside `value`, counting shared parts each time; stops past `limit`."""
    return _measure(value, limit)[0]


def _check_size(value: Any, what: str = "a value") -> Any:
    """Refuse a value over `MAX_VALUE`; the measuring is charged (it is work too)."""
    if isinstance(value, str):
        charge(len(value) // CHARS + 1)
        if len(value) > MAX_VALUE:
            refuse(f"{what} longer than {MAX_VALUE} would be produced")
    elif isinstance(value, list | tuple | dict):
        weight, cost = _measure(value)
        charge(cost)
        if weight > MAX_VALUE:
            refuse(f"{what} longer than {MAX_VALUE} would be produced")
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > MAX_INT_BITS:
        refuse(f"a number larger than {MAX_INT_BITS} bits would be produced")
    return value


def _finalize(value: Any) -> Any:
    """Every `{{ ... }}` output, into the result or into a `{% set %}` block: charged by its size."""
    if isinstance(value, str):
        charge(len(value) // CHARS + 1)
    elif isinstance(value, list | tuple | dict):
        weight, cost = _measure(value, 4 * MAX_VALUE)
        charge(cost + 4 * weight // CHARS)  # and its text: a few characters per item
    else:
        charge(1)
    return value


def _literal_list(*items: Any) -> list[Any]:
    charge(len(items) + 1)
    return _check_size(list(items), "a list")  # type: ignore[no-any-return]


def _literal_tuple(*items: Any) -> tuple[Any, ...]:
    charge(len(items) + 1)
    return _check_size(tuple(items), "a tuple")  # type: ignore[no-any-return]


def _literal_dict(*pairs: Any) -> dict[Any, Any]:
    charge(len(pairs) + 1)
    return _check_size(dict(zip(pairs[::2], pairs[1::2], strict=True)), "a dict")  # type: ignore[no-any-return]


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


def _bounded_iter(iterable: Any, weight: int = 1) -> Iterator[Any]:
    """A loop's items, each charged `weight` (1 + the literal text of the loop body)."""
    if isinstance(iterable, Undefined):
        return
    for item in iterable:
        _spend(1, ITERATION + weight)
        yield item


def _bounded_concat(*parts: Any) -> str:
    total = 0
    out = []
    for part in parts:
        text = str(part)
        total += len(text)
        charge(len(text) // CHARS + 1)
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


# filters whose work does not grow with their input; sorting ones (n·log2 n); ones that walk the value deeply
_CHEAP_FILTERS = _words("length count first last default d abs int float round safe attr items filesizeformat")
_SORTING_FILTERS = _words("sort dictsort groupby unique")
_DEEP_FILTERS = _words("tojson string list")


def _filter_cost(name: str, value: Any, extra: Iterable[Any]) -> int:
    if name in _CHEAP_FILTERS:
        return CALL
    if name in _SORTING_FILTERS:
        n = _items_of(value)
        cost = n * max(1, n.bit_length())
    elif name in _DEEP_FILTERS and isinstance(value, list | tuple | dict):
        weight, cost = _measure(value, 4 * MAX_VALUE)
        cost += weight // CHARS
    else:
        cost = _size(value)
    return CALL + cost + sum(_size(arg) for arg in extra)


def _guard_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    skip = 2 if getattr(func, "jinja_pass_arg", None) is not None else 1  # (env/context,) value

    @functools.wraps(func)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        for arg in (*args[skip:], *kwargs.values()):
            if isinstance(arg, int) and not isinstance(arg, bool) and abs(arg) > MAX_VALUE:
                refuse(f"filter {name!r} given a number over {MAX_VALUE}")
        value = args[skip - 1] if len(args) >= skip else None
        charge(_filter_cost(name, value, (*args[skip:], *kwargs.values())))
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
        super().__init__(
            undefined=ChainableUndefined, autoescape=False, keep_trailing_newline=True, finalize=_finalize
        )
        self.filters = {name: _guard_filter(name, DEFAULT_FILTERS[name]) for name in SAFE_FILTERS}
        self.globals = {
            "range": _safe_range,
            "dict": dict,
            "namespace": Namespace,
            "cycler": Cycler,
            "joiner": Joiner,
            "waflow_iter": _bounded_iter,
            "waflow_concat": _bounded_concat,
            "waflow_list": _literal_list,
            "waflow_tuple": _literal_tuple,
            "waflow_dict": _literal_dict,
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
        elif isinstance(argument, slice):
            charge(_size(obj))  # a slice copies
        return super().getitem(obj, argument)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        if id(__obj) in _HELPER_IDS:  # the rewriting's own helpers charge and measure what they do
            kwargs.pop("_loop_vars", None)
            kwargs.pop("_block_vars", None)
            return __obj(*args, **kwargs)
        target = getattr(__obj, "__self__", None)
        charge(CALL + _size(target) + sum(_size(a) for a in (*args, *kwargs.values())))
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
        charge(_size(left) + _size(right))
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


_HELPER_IDS = frozenset(
    id(helper) for helper in (_bounded_iter, _bounded_concat, _literal_list, _literal_tuple, _literal_dict)
)


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
        if isinstance(seq, str | list | tuple) and _is_int(count):
            if len(seq) * max(count, 0) > MAX_VALUE:
                refuse(f"a value longer than {MAX_VALUE} would be produced by '*'")
            charge(_size(seq) * max(count, 0))
    if _is_int(left) and _is_int(right) and left.bit_length() + right.bit_length() > MAX_INT_BITS:
        refuse(f"a number larger than {MAX_INT_BITS} bits would be produced by '*'")


# --- compile-time checks and rewriting --------------------------------------------------------------


class _Harden(NodeTransformer):
    """Route loops and `~` through the bounded helpers; refuse forbidden statements and private names."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        if node.recursive:
            refuse("recursive loops are not allowed")
        # each iteration is charged the literal text its body writes (a `{% set %}` block collects it unseen)
        weight = sum(len(data.data) for body in (node.body, node.else_) for item in body
                     for data in item.find_all(nodes.TemplateData)) // CHARS  # fmt: skip
        node = self.generic_visit(node)  # type: ignore[assignment]
        node.iter = _helper_call("waflow_iter", [node.iter, nodes.Const(weight)], node.lineno)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        node = self.generic_visit(node)  # type: ignore[assignment]
        return _helper_call("waflow_concat", list(node.nodes), node.lineno)

    # literals are built through helpers that charge and measure them (`[a, a, a]` of big values, nested)

    def visit_List(self, node: nodes.List) -> nodes.Node:
        node = self.generic_visit(node)  # type: ignore[assignment]
        return _helper_call("waflow_list", list(node.items), node.lineno)

    def visit_Tuple(self, node: nodes.Tuple) -> nodes.Node:
        node = self.generic_visit(node)  # type: ignore[assignment]
        if node.ctx != "load":  # an assignment target: `{% for a, b in ... %}`
            return node
        return _helper_call("waflow_tuple", list(node.items), node.lineno)

    def visit_Dict(self, node: nodes.Dict) -> nodes.Node:
        node = self.generic_visit(node)  # type: ignore[assignment]
        flat: list[nodes.Expr] = []
        for pair in node.items:
            flat += [pair.key, pair.value]
        return _helper_call("waflow_dict", flat, node.lineno)

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
