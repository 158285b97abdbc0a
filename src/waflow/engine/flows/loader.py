"""Flow files (YAML or JSON) → `FlowDefinition`, refusing anything hostile with a clear `FlowLoadError`.

YAML goes through PyYAML's safe loader only (no Python objects), bounded in size, nesting depth,
alias count and expanded size (a "billion laughs" alias bomb or a recursive alias is refused
before anything is built from it). Duplicate keys are errors (plain YAML silently keeps the last).
Every problem is collected, with the node id, the field and the source line when known.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from waflow.engine.flows.definition import FlowDefinition
from waflow.engine.flows.nodes import NODE_TYPES
from waflow.engine.flows.problems import FlowLoadError, FlowProblem, Severity, error

MAX_BYTES = 1_000_000
MAX_DEPTH = 40
MAX_ITEMS = 100_000  # scalars + containers, with every alias expanded
MAX_ALIASES = 1_000

Path_ = tuple[str | int, ...]
Positions = dict[Path_, tuple[int, int]]
Format = Literal["auto", "yaml", "json"]


class _Refused(Exception):
    def __init__(self, message: str, line: int | None = None, column: int | None = None) -> None:
        super().__init__(message)
        self.line = line
        self.column = column


# --- YAML -----------------------------------------------------------------------------------------


class _BoundedSafeLoader(yaml.SafeLoader):
    """The safe loader, counting aliases and nesting while it composes."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._aliases = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        event = self.peek_event()  # type: ignore[no-untyped-call]
        if isinstance(event, yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                raise _Refused(f"more than {MAX_ALIASES} YAML aliases", *_mark(event.start_mark))
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _Refused(f"nested deeper than {MAX_DEPTH} levels", *_mark(event.start_mark))
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _mark(mark: Any) -> tuple[int | None, int | None]:
    if mark is None:
        return None, None
    return mark.line + 1, mark.column + 1


def _walk_yaml(root: yaml.Node) -> Positions:
    """Positions of every path; refuses recursive aliases, alias bombs and duplicate keys."""
    positions: Positions = {(): _pos(root)}
    count = 0
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, Path_, bool]] = [(root, (), False)]
    while stack:
        node, path, leaving = stack.pop()
        if leaving:
            on_path.discard(id(node))
            continue
        count += 1
        if count > MAX_ITEMS:
            raise _Refused(f"the document expands to more than {MAX_ITEMS} items (a YAML alias bomb?)", *_pos(node))
        if isinstance(node, yaml.ScalarNode):
            continue
        if id(node) in on_path:
            raise _Refused("a recursive YAML alias (a structure that contains itself)", *_pos(node))
        if len(path) > MAX_DEPTH:
            raise _Refused(f"nested deeper than {MAX_DEPTH} levels", *_pos(node))
        on_path.add(id(node))
        stack.append((node, path, True))
        children: list[tuple[yaml.Node, Path_]] = []
        if isinstance(node, yaml.MappingNode):
            seen: set[str] = set()
            for key_node, value_node in node.value:
                if isinstance(key_node, yaml.ScalarNode):
                    key = key_node.value
                    if key in seen and key != "<<":
                        raise _Refused(f"duplicate key {key!r}", *_pos(key_node))
                    seen.add(key)
                    child_path = (*path, key)
                    positions.setdefault(child_path, _pos(key_node))
                    children.append((value_node, child_path))
                else:
                    children.append((key_node, (*path, "<key>")))
                    children.append((value_node, (*path, "<value>")))
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                child_path = (*path, i)
                positions.setdefault(child_path, _pos(item))
                children.append((item, child_path))
        stack.extend((child, child_path, False) for child, child_path in reversed(children))
    return positions


def _pos(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _parse_yaml(text: str) -> tuple[Any, Positions]:
    try:
        loader = _BoundedSafeLoader(text)
    except yaml.YAMLError as exc:
        raise _Refused(f"invalid YAML: {exc}") from None
    try:
        root = loader.get_single_node()
        if root is None:
            raise _Refused("the document is empty")
        positions = _walk_yaml(root)
        data = loader.construct_document(root)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        raise _Refused(f"invalid YAML: {problem}", *_mark(mark)) from None
    except yaml.YAMLError as exc:
        raise _Refused(f"invalid YAML: {exc}") from None
    except RecursionError:
        raise _Refused(f"nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:  # e.g. an integer past Python's 4,300-digit conversion limit
        raise _Refused(f"invalid value: {exc}") from None
    finally:
        loader.dispose()
    return data, positions


def _parse_json(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise _Refused(f"invalid JSON: {exc.msg}", exc.lineno, exc.colno) from None
    except RecursionError:
        raise _Refused(f"nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:  # e.g. an integer past Python's 4,300-digit conversion limit
        raise _Refused(f"invalid JSON value: {exc}") from None


# --- plain data -----------------------------------------------------------------------------------


def _plain(value: Any, depth: int = 0, budget: list[int] | None = None, on_path: frozenset[int] = frozenset()) -> Any:
    """A JSON-shaped copy of the data (YAML dates become ISO text); refuses cycles, depth, size, odd types."""
    budget = budget if budget is not None else [MAX_ITEMS]
    budget[0] -= 1
    if budget[0] < 0:
        raise _Refused(f"the document has more than {MAX_ITEMS} items")
    if depth > MAX_DEPTH:
        raise _Refused(f"nested deeper than {MAX_DEPTH} levels")
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Mapping | list | tuple):
        if id(value) in on_path:
            raise _Refused("a structure that contains itself")
        inner = on_path | {id(value)}
        if isinstance(value, Mapping):
            out: dict[Any, Any] = {}
            for key, item in value.items():
                if not isinstance(key, str | int | float | bool) and key is not None:
                    raise _Refused(f"a mapping key of type {type(key).__name__} (keys must be text)")
                out[key] = _plain(item, depth + 1, budget, inner)
            return out
        return [_plain(item, depth + 1, budget, inner) for item in value]
    raise _Refused(f"a value of type {type(value).__name__} (only text, numbers, booleans, lists and mappings)")


# --- pydantic errors → problems -------------------------------------------------------------------


def _data_path(data: Any, loc: tuple[str | int, ...]) -> Path_:
    """Drop the union tags pydantic puts into `loc` by following the actual data."""
    out: list[str | int] = []
    current = data
    node_tag_seen = False
    for i, part in enumerate(loc):
        following = loc[i + 1] if i + 1 < len(loc) else None
        if isinstance(current, Mapping) and isinstance(part, str):
            if part == current.get("type") and len(out) == 2 and out[0] == "nodes" and not node_tag_seen:
                node_tag_seen = True
                continue  # the node-type tag
            if len(current) == 1 and part in current and following == part:
                continue  # the tag of a one-key mapping (validate rule, trigger)
            if part in current:
                out.append(part)
                current = current[part]
                continue
            if _TYPE_TAG.match(part):
                continue
            out.append(part)
            current = None
        elif isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current):
            out.append(part)
            current = current[part]
        elif isinstance(current, list) and isinstance(part, str) and _TYPE_TAG.match(part):
            continue
        else:
            out.append(part)
            current = None
    return tuple(out)


_TYPE_TAG = re.compile(r"^(function-|tagged-union|constrained-|list\[|dict\[|[A-Z]\w*$|(float|int|str|bool|none)$)")

_HINT_TYPES = {"string_type", "int_type", "float_type", "bool_type", "list_type", "dict_type", "model_type"}


def _message(err: ErrorDetails, path: Path_) -> str:
    kind = err["type"]
    msg = err["msg"]
    value = err.get("input")
    if kind == "extra_forbidden":
        return f"unknown field {path[-1]!r}" if path else "unknown field"
    if kind == "missing":
        return f"missing required field {path[-1]!r}" if path else "missing required field"
    if kind == "union_tag_not_found":
        return f"a node needs a 'type': one of {', '.join(NODE_TYPES)}"
    if kind == "union_tag_invalid":
        tag = (err.get("ctx") or {}).get("tag")
        return f"unknown node type {tag!r}; expected one of {', '.join(NODE_TYPES)}"
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    if kind in _HINT_TYPES and isinstance(value, bool | int | float | date) and kind == "string_type":
        msg += f" (got {value!r}: YAML reads yes/no/on/off, numbers and dates as non-text — quote it)"
    elif kind in _HINT_TYPES:
        msg += f" (got {type(value).__name__})"
    return msg[0].lower() + msg[1:] if msg else kind


def _problems_from(exc: ValidationError, data: Any, positions: Positions) -> list[FlowProblem]:
    by_path: dict[Path_, list[str]] = {}
    for err in exc.errors(include_url=False):
        path = _data_path(data, tuple(err["loc"]))
        messages = by_path.setdefault(path, [])
        message = _message(err, path)
        if message not in messages:
            messages.append(message)
    problems: list[FlowProblem] = []
    for path, messages in by_path.items():
        message = " — or: ".join(messages)  # several members of a union refused the same value
        node: str | None = None
        inner: Path_ = path
        if len(path) >= 2 and path[0] == "nodes" and isinstance(path[1], str):
            node, inner = path[1], path[2:]
        line, column = _lookup(positions, path)
        problems.append(FlowProblem(Severity.ERROR, "schema", message, node, inner, line, column))
    return problems


def _lookup(positions: Positions, path: Path_) -> tuple[int | None, int | None]:
    for end in range(len(path), -1, -1):
        found = positions.get(path[:end])
        if found is not None:
            return found
    return None, None


# --- public ---------------------------------------------------------------------------------------


def _refusal(exc: _Refused, source: str) -> FlowLoadError:
    return FlowLoadError([FlowProblem(Severity.ERROR, "load", str(exc), line=exc.line, column=exc.column)], source)


def parse_flow_text(text: str | bytes, *, fmt: Format = "auto", source: str = "<string>") -> tuple[Any, Positions]:
    """The plain data of a flow document and the source position of each path (empty for JSON)."""
    if isinstance(text, bytes):
        if len(text) > MAX_BYTES:
            raise FlowLoadError([error("load", f"the flow is larger than {MAX_BYTES} bytes")], source)
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise FlowLoadError([error("load", f"not UTF-8 text: {exc.reason} at byte {exc.start}")], source) from None
    if len(text) > MAX_BYTES:
        raise FlowLoadError([error("load", f"the flow is larger than {MAX_BYTES} bytes")], source)
    if fmt == "auto":
        fmt = "json" if source.lower().endswith(".json") else "yaml"
    try:
        positions: Positions = {}
        if fmt == "json":
            data = _parse_json(text)
        else:
            data, positions = _parse_yaml(text)
        data = _plain(data)
    except _Refused as exc:
        raise _refusal(exc, source) from None
    return data, positions


def load_flow_data(data: Any, *, source: str = "<data>", positions: Positions | None = None) -> FlowDefinition:
    """Plain data (a dict as parsed from YAML/JSON) → `FlowDefinition`, or `FlowLoadError` with every problem."""
    try:
        data = _plain(data)
    except _Refused as exc:
        raise _refusal(exc, source) from None
    if not isinstance(data, dict):
        kind = "nothing" if data is None else type(data).__name__
        raise FlowLoadError([error("load", f"a flow is a mapping (id, start, nodes, ...), not {kind}")], source)
    try:
        return FlowDefinition.model_validate(data)
    except ValidationError as exc:
        raise FlowLoadError(_problems_from(exc, data, positions or {}), source) from None
    except RecursionError:
        raise FlowLoadError([error("load", "the flow is nested too deeply")], source) from None


def load_flow_text(text: str | bytes, *, fmt: Format = "auto", source: str = "<string>") -> FlowDefinition:
    """A YAML or JSON document → `FlowDefinition` (JSON is YAML too, so `auto` reads both)."""
    data, positions = parse_flow_text(text, fmt=fmt, source=source)
    return load_flow_data(data, source=source, positions=positions)


def load_flow_file(path: str | os.PathLike[str]) -> FlowDefinition:
    """Read and load a `.yaml`/`.yml`/`.json` flow file."""
    file = Path(path)
    try:
        size = file.stat().st_size
        if size > MAX_BYTES:
            raise FlowLoadError([error("load", f"the flow is larger than {MAX_BYTES} bytes")], str(file))
        raw = file.read_bytes()
    except OSError as exc:
        raise FlowLoadError([error("load", f"cannot read the file: {exc.strerror or exc}")], str(file)) from None
    fmt: Format = "json" if file.suffix.lower() == ".json" else "yaml"
    return load_flow_text(raw, fmt=fmt, source=str(file))


def load_flow(source: str | bytes | os.PathLike[str] | Mapping[str, Any]) -> FlowDefinition:
    """A path (`Path`), a document (`str`/`bytes`) or parsed data (a mapping) → `FlowDefinition`."""
    if isinstance(source, os.PathLike):
        return load_flow_file(source)
    if isinstance(source, Mapping):
        return load_flow_data(source)
    return load_flow_text(source)
