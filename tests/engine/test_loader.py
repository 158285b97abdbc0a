"""Loading flow files: good ones, bad ones (every problem named), hostile ones (clear refusals)."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from waflow.engine import (
    ButtonsNode,
    FlowLoadError,
    HttpNode,
    QuestionNode,
    RegexRule,
    load_flow,
    load_flow_data,
    load_flow_file,
    load_flow_text,
)
from waflow.engine.flows.loader import MAX_BYTES

from .helpers import load

PIZZA = """
id: pizza
triggers: [{keyword: [hi, menu]}, {any_first_message: true}]
start: greet
session_timeout: 30m
nodes:
  greet:
    type: buttons
    text: "Hi {{ contact.name }}! What would you like?"
    buttons:
      - {id: order, title: Order a pizza, next: ask_order}
      - {id: track, title: Track my order, next: ask_order}
    no_match: greet
  ask_order:
    type: question
    text: Your 6-digit order number?
    validate: {regex: '^\\d{6}$'}
    save_as: order_id
    retries: 2
    on_fail: done
    next: lookup
  lookup:
    type: http
    method: GET
    url: "https://orders.example/api/{{ vars.order_id }}"
    save: {status: "{{ response.json.status }}"}
    next: done
    on_error: done
  done: {type: end}
"""


def errors_of(text: str) -> list[str]:
    with pytest.raises(FlowLoadError) as info:
        load_flow_text(text)
    return [str(p) for p in info.value.problems]


def test_loads_the_brief_example() -> None:
    defn = load(PIZZA)
    assert defn.id == "pizza" and defn.start == "greet"
    assert defn.session_timeout == timedelta(minutes=30)
    greet = defn.nodes["greet"]
    assert isinstance(greet, ButtonsNode) and [b.id for b in greet.buttons] == ["order", "track"]
    question = defn.nodes["ask_order"]
    assert isinstance(question, QuestionNode) and isinstance(question.validate_, RegexRule)
    assert question.validate_.regex == r"^\d{6}$"
    assert isinstance(defn.nodes["lookup"], HttpNode)
    assert [t.kind for t in defn.triggers] == ["keyword", "any_first_message"]


def test_examples_load(example_file: Path) -> None:
    defn = load_flow_file(example_file)
    assert defn.nodes


def test_json_and_yaml_give_the_same_definition(tmp_path: Path) -> None:
    data = yaml.safe_load(PIZZA)
    path = tmp_path / "pizza.json"
    path.write_text(json.dumps(data))
    assert load_flow_file(path) == load(PIZZA) == load_flow(data) == load_flow(path)


def test_rule_and_trigger_shorthands() -> None:
    defn = load(
        """
id: f
start: q
triggers: [{keyword: hi}, {payload: CANCEL}, {referral: {}}, {api: true}, {regex: '^x'}]
nodes:
  q: {type: question, text: "Email?", validate: email, save_as: e, next: n}
  n: {type: question, text: "N?", validate: {number: {min: 1, max: 9, integer: true}}, save_as: n, next: d}
  d: {type: question, text: "D?", validate: {date: {min_days: 1}}, save_as: d, next: c}
  c: {type: question, text: "C?", validate: {choice: [a, b]}, save_as: c, next: e}
  e: {type: end}
"""
    )
    rules = [n.validate_.kind for n in defn.nodes.values() if isinstance(n, QuestionNode)]
    assert rules == ["email", "number", "date", "choice"]
    assert defn.triggers[0].keyword == ["hi"]  # type: ignore[union-attr]


def test_every_schema_problem_is_reported_with_node_field_and_line() -> None:
    text = """id: bad
start: a
nodes:
  a:
    type: buttons
    text: 1
    buttons:
      - {id: x, title: T, next: b, colour: red}
      - {id: y}
  b: {type: question, text: hi, validate: {bogus: 1}, save_as: "1x", next: a}
  c: {type: message, text: a, image: {link: "https://x/y.png"}}
  d: {type: messag}
  e: {text: hi}
  f: {type: wait, duration: 5x, next: a}
  g: {type: goto}
"""
    with pytest.raises(FlowLoadError) as info:
        load_flow_text(text)
    found = {(p.node, p.field): p for p in info.value.problems}
    assert "valid string" in found[("a", "text")].message and found[("a", "text")].line == 6
    assert found[("a", "buttons[0].colour")].message == "unknown field 'colour'"
    assert found[("a", "buttons[0].colour")].line == 8
    assert "missing required field 'title'" in found[("a", "buttons[1].title")].message
    assert "validate must be one of" in found[("b", "validate")].message
    assert "pattern" in found[("b", "save_as")].message
    assert "exactly one of" in found[("c", "")].message
    assert "unknown node type 'messag'" in found[("d", "")].message
    assert "needs a 'type'" in found[("e", "")].message
    assert "invalid duration '5x'" in found[("f", "duration")].message
    assert "exactly one of 'next'" in found[("g", "")].message
    assert len(info.value.problems) == 10  # collected, not first-only


def test_yaml_booleans_get_a_hint() -> None:
    text = "id: f\nstart: a\nnodes:\n  a: {type: buttons, text: t, buttons: [{id: yes, title: Yes}]}\n"
    message = errors_of(text)[0]
    assert "quote it" in message


def test_invalid_yaml_names_line_and_column() -> None:
    with pytest.raises(FlowLoadError) as info:
        load_flow_text("id: f\nstart: a\nnodes:\n  a: {type: end\n  b: [\n")
    [problem] = info.value.problems
    assert problem.message.startswith("invalid YAML")
    assert problem.line is not None and problem.line >= 4 and problem.column is not None


def test_invalid_json_names_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "f.json"
    path.write_text('{"id": "f",\n "start": }')
    with pytest.raises(FlowLoadError) as info:
        load_flow_file(path)
    assert info.value.problems[0].line == 2 and "invalid JSON" in info.value.problems[0].message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "empty"),
        ("- 1\n- 2\n", "a flow is a mapping"),
        ("just text", "a flow is a mapping"),
        ("id: f\nid: g\n", "duplicate key 'id'"),
        ("a: !!python/object/apply:os.system [echo hi]\n", "could not determine a constructor"),
        ("a: !!binary aGVsbG8=\n", "bytes"),
        ("a: !!set {x, y}\n", "set"),
        ("a: &a [*a]\n", "recursive YAML alias"),
        ("a: &a {b: *a}\n", "recursive YAML alias"),
        ("a: *nothing\n", "undefined alias"),
        ("[" * 5000 + "]" * 5000, "nested deeper"),
        ("a:\n" + "".join("  " * i + "- \n" for i in range(1, 200)), "nested deeper"),
        ("\t- a: b", "invalid YAML"),
    ],
)
def test_hostile_documents_are_refused_clearly(text: str, expected: str) -> None:
    messages = errors_of(text)
    assert any(expected in m for m in messages), messages


def test_billion_laughs_is_refused_fast() -> None:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    started = time.monotonic()
    messages = errors_of("\n".join(lines) + "\n")
    assert any("alias bomb" in m or "aliases" in m for m in messages), messages
    assert time.monotonic() - started < 2


def test_many_aliases_are_refused() -> None:
    text = "x: &x 1\nl: [" + ",".join(["*x"] * 2000) + "]\n"
    assert any("aliases" in m for m in errors_of(text))


def test_size_limit() -> None:
    big = "id: f\nstart: a\ndescription: '" + "x" * (MAX_BYTES + 10) + "'\n"
    assert any("larger than" in m for m in errors_of(big))
    with pytest.raises(FlowLoadError, match="larger than"):
        load_flow_text(big.encode())


def test_big_file_is_refused_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_bytes(b"#" * (MAX_BYTES + 1))
    with pytest.raises(FlowLoadError, match="larger than"):
        load_flow_file(path)


def test_missing_file_and_bad_encoding(tmp_path: Path) -> None:
    with pytest.raises(FlowLoadError, match="cannot read"):
        load_flow_file(tmp_path / "nope.yaml")
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"id: caf\xe9\n")
    with pytest.raises(FlowLoadError, match="UTF-8"):
        load_flow_file(path)


def test_wrong_types_everywhere() -> None:
    messages = errors_of("id: [1]\nstart: {a: 1}\nnodes: [1, 2]\ntriggers: {keyword: hi}\nsession_timeout: true\n")
    assert len(messages) >= 4


def test_cyclic_python_data_is_refused() -> None:
    data: dict[str, object] = {"id": "f", "start": "a"}
    data["nodes"] = data
    with pytest.raises(FlowLoadError, match="contains itself"):
        load_flow_data(data)


def test_too_many_nodes() -> None:
    nodes = {f"n{i}": {"type": "end"} for i in range(600)}
    with pytest.raises(FlowLoadError, match="at most 500"):
        load_flow_data({"id": "f", "start": "n0", "nodes": nodes})


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=30,
)
_node = st.fixed_dictionaries(
    {"type": st.sampled_from(["message", "buttons", "list", "question", "condition", "http", "wait", "end", "x"])},
    optional={
        "text": _json,
        "next": st.sampled_from(["a", "b", "", "-"]) | _json,
        "buttons": st.lists(st.dictionaries(st.sampled_from(["id", "title", "next"]), _json), max_size=4),
        "duration": st.sampled_from(["1m", "2x", 3, -1]) | _json,
        "branches": _json,
        "validate": st.sampled_from(["email", "bogus", {"regex": "("}]) | _json,
        "save_as": _json,
        "url": _json,
    },
)
_flow = st.fixed_dictionaries(
    {},
    optional={
        "id": st.text(max_size=10) | _json,
        "start": st.sampled_from(["a", "b"]) | _json,
        "nodes": st.dictionaries(st.sampled_from(["a", "b", "c"]) | st.text(max_size=5), _node | _json, max_size=4),
        "triggers": st.lists(_json, max_size=3) | _json,
        "session_timeout": st.sampled_from(["30m", "x"]) | _json,
        "vars": _json,
    },
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_flow | _json)
def test_random_data_never_crashes_the_loader(data: object) -> None:
    try:
        defn = load_flow_data(data)
    except FlowLoadError as exc:
        assert exc.problems and all(p.message for p in exc.problems)
    else:
        from waflow.engine import validate_flow

        validate_flow(defn)  # a loaded flow always validates without crashing


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=200))
def test_random_text_never_crashes_the_loader(text: str) -> None:
    try:
        load_flow_text(text)
    except FlowLoadError as exc:
        assert exc.problems
