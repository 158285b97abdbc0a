"""validate_flow: each problem class, with its node and field named; the examples are clean."""

from __future__ import annotations

from pathlib import Path

import pytest

from waflow.engine import Severity, check_flow_file, check_flow_files, load_flow_text, validate_flow

from .helpers import EXAMPLE_FILES, find, problems


def flow(nodes: str, start: str = "a", extra: str = "triggers: [{keyword: hi}]\n") -> str:
    return f"id: t\nstart: {start}\n{extra}nodes:\n{nodes}"


def test_examples_validate_clean(example_file: Path) -> None:
    report = check_flow_files(EXAMPLE_FILES)[EXAMPLE_FILES.index(example_file)]
    assert report.ok and report.problems == [], [str(p) for p in report.problems]


def test_example_alone_still_validates(example_file: Path) -> None:
    assert check_flow_file(example_file).errors == []


def test_unknown_targets_and_start() -> None:
    found = problems(flow("  a: {type: message, text: hi, next: b}\n  bb: {type: end}\n", start="zz"))
    p = find(found, "unknown-target", "a", "next")
    assert "'b' is not a node" in p.message and "did you mean 'bb'" in p.message and p.line == 5
    assert find(found, "unknown-start", None, "start").is_error


def test_missing_transitions() -> None:
    found = problems(
        flow(
            "  a: {type: message, text: hi}\n"
            "  b: {type: condition, branches: [{if: 'true', next: e}]}\n"
            "  c: {type: buttons, text: t, buttons: [{id: x, title: X}]}\n"
            "  d: {type: list, text: t, button: B, sections: [{rows: [{id: r, title: R}]}]}\n"
            "  f: {type: template, name: hello}\n"
            "  e: {type: end}\n"
        )
    )
    find(found, "missing-transition", "a", "next")
    find(found, "missing-transition", "b", "else")
    find(found, "missing-transition", "c", "buttons[0].next")
    find(found, "missing-transition", "d", "sections[0].rows[0].next")
    find(found, "missing-transition", "f", "next")
    assert not [p for p in found if p.code == "missing-transition" and p.node == "e"]


def test_unreachable_is_a_warning() -> None:
    found = problems(flow("  a: {type: end}\n  lost: {type: end}\n"))
    p = find(found, "unreachable", "lost")
    assert p.severity is Severity.WARNING


def test_busy_cycle_is_an_error_but_a_waiting_cycle_is_fine() -> None:
    busy = problems(
        flow(
            "  a: {type: set, vars: {n: '{{ vars.n + 1 }}'}, next: b}\n"
            "  b: {type: condition, branches: [{if: 'vars.n < 10', next: a}], else: c}\n"
            "  c: {type: http, url: 'http://x', next: c, on_error: e}\n"
            "  e: {type: end}\n"
        )
    )
    cycles = [p for p in busy if p.code == "busy-cycle"]
    assert len(cycles) == 2 and all(p.is_error for p in cycles)
    assert "a → b → a" in cycles[0].message
    calm = problems(
        flow(
            "  a: {type: question, text: 'n?', save_as: n, on_fail: e, next: b}\n"
            "  b: {type: condition, branches: [{if: 'vars.n == \"1\"', next: a}], else: w}\n"
            "  w: {type: wait, duration: 1m, next: a}\n"
            "  e: {type: end}\n"
        )
    )
    assert not [p for p in calm if p.code == "busy-cycle"], calm


def test_a_delivery_failure_loop_is_not_a_busy_cycle() -> None:
    found = problems(flow("  a: {type: message, text: hi, next: e, on_failed: a}\n  e: {type: end}\n"))
    assert not [p for p in found if p.code == "busy-cycle"]


def test_subflow_cycle_is_a_warning() -> None:
    found = problems(flow("  a: {type: subflow, flow: other, next: a}\n"))
    assert find(found, "busy-cycle", "a").severity is Severity.WARNING


def test_button_limits_and_duplicates() -> None:
    found = problems(
        flow(
            "  a:\n    type: buttons\n    text: Pick\n    footer: " + "f" * 61 + "\n    next: e\n    buttons:\n"
            "      - {id: x, title: This title is too long for WhatsApp}\n"
            "      - {id: x, title: Same}\n"
            "      - {id: z, title: Same}\n"
            "      - {id: w, title: '{{ contact.name }}'}\n"
            "  e: {type: end}\n"
        )
    )
    find(found, "too-many-buttons", "a", "buttons")
    assert "20" in find(found, "too-long", "a", "buttons[0].title").message
    find(found, "duplicate-button-id", "a", "buttons[1].id")
    find(found, "duplicate-button-title", "a", "buttons[2].title")
    find(found, "too-long", "a", "footer")
    assert find(found, "templated-length", "a", "buttons[3].title").severity is Severity.WARNING


def test_list_limits() -> None:
    rows = "".join(f"          - {{id: r{i}, title: Row {i}}}\n" for i in range(11))
    found = problems(
        flow(
            "  a:\n    type: list\n    text: Pick\n    button: A label that is too long\n    next: e\n"
            "    sections:\n      - title: A section title over 24 chars\n        rows:\n" + rows + "      - rows:\n"
            "          - {id: r1, title: Dup, description: " + "d" * 73 + "}\n"
            "          - {id: " + "i" * 201 + ", title: A row title longer than 24}\n"
            "  e: {type: end}\n"
        )
    )
    find(found, "too-long", "a", "button")
    find(found, "too-many-rows", "a", "sections")
    find(found, "too-long", "a", "sections[0].title")
    find(found, "section-title", "a", "sections[1].title")
    find(found, "too-long", "a", "sections[1].rows[0].description")
    find(found, "too-long", "a", "sections[1].rows[1].id")
    find(found, "too-long", "a", "sections[1].rows[1].title")
    find(found, "duplicate-row-id", "a", "sections[1].rows[0].id")


def test_templated_text_checks_its_literal_part() -> None:
    found = problems(flow("  a: {type: message, text: '" + "x" * 4100 + "{{ vars.y }}', next: e}\n  e: {type: end}\n"))
    assert "literal text alone" in find(found, "too-long", "a", "text").message


def test_bad_expressions_and_unsafe_ones() -> None:
    found = problems(
        flow(
            "  a: {type: message, text: 'Hi {{ contact.name }', next: b}\n"
            "  b: {type: condition, branches: [{if: 'vars.x ==', next: c}, {if: \"''.__class__\", next: c}], else: c}\n"
            "  c: {type: set, vars: {y: '{{ range(10) | center(5) }}'}, next: d}\n"
            "  d: {type: http, url: 'https://x/{% include \"f\" %}', next: e, on_error: e}\n"
            "  e: {type: end}\n"
        )
    )
    assert "syntax error" in find(found, "bad-expression", "a", "text").message
    find(found, "bad-expression", "b", "branches[0].if")
    assert "__class__" in find(found, "bad-expression", "b", "branches[1].if").message
    assert "center" in find(found, "bad-expression", "c", "vars.y").message
    assert "include" in find(found, "bad-expression", "d", "url").message


def test_variable_and_name_warnings() -> None:
    found = problems(
        flow(
            "  a: {type: message, text: '{{ vars.never }} {{ user.name }} {{ response.json }}', next: e}\n"
            "  e: {type: end}\n"
        )
    )
    assert find(found, "unset-variable", "a", "text").severity is Severity.WARNING
    find(found, "unknown-name", "a", "text")
    find(found, "response-outside-http", "a", "text")


def test_variables_set_anywhere_are_known() -> None:
    found = problems(
        flow(
            "  a: {type: question, text: 'q', save_as: q, on_fail: e, next: b}\n"
            "  b: {type: http, url: 'https://x/{{ vars.q }}', save: {s: '{{ response.json.s }}'}, next: c,"
            " on_error: e}\n"
            "  c: {type: message, text: '{{ vars.s }} {{ vars.default }} {% for i in vars.q %}{{ i }}{% endfor %}',"
            " next: e}\n"
            "  e: {type: end}\n",
            extra="triggers: [{keyword: hi}]\nvars: {default: 1}\n",
        )
    )
    assert found == [], [str(p) for p in found]


def test_bad_regexes() -> None:
    found = problems(
        flow(
            "  a: {type: question, text: q, validate: {regex: '(unclosed'}, save_as: x, on_fail: e, next: e}\n"
            "  e: {type: end}\n",
            extra="triggers: [{regex: '[a-'}]\n",
        )
    )
    find(found, "bad-regex", "a", "validate.regex")
    find(found, "bad-regex", None, "triggers[0].regex")


def test_rule_sanity_and_question_warnings() -> None:
    found = problems(
        flow(
            "  a: {type: question, text: q, validate: {number: {min: 5, max: 1}}, save_as: x, next: b}\n"
            "  b: {type: question, text: q, validate: {date: {min_days: 9, max_days: 1, formats: [ymd]}}, save_as: y,"
            " on_fail: e, next: e, timeout: 5m}\n"
            "  e: {type: end}\n"
        )
    )
    find(found, "bad-rule", "a", "validate.number")
    find(found, "bad-rule", "b", "validate.date")
    find(found, "bad-rule", "b", "validate.date.formats[0]")
    find(found, "no-on-fail", "a", "on_fail")
    find(found, "timeout", "b", "timeout")


def test_http_checks() -> None:
    found = problems(
        flow(
            "  a: {type: http, url: 'ftp://x', timeout: 2m, body: x, next: e}\n"
            "  b: {type: http, url: '{{ flow.vars.base }}/x', next: e, on_error: e}\n"
            "  e: {type: end}\n",
            start="a",
        )
    )
    find(found, "bad-url", "a", "url")
    find(found, "http-timeout", "a", "timeout")
    find(found, "http-body", "a", "body")
    find(found, "no-on-error", "a", "on_error")
    assert not [p for p in found if p.node == "b" and p.code == "bad-url"]


def test_service_window_after_a_long_wait() -> None:
    found = problems(
        flow(
            "  a: {type: wait, duration: 2d, next: b}\n"
            "  b: {type: message, text: hi, next: c}\n"
            "  c: {type: wait, duration: 25h, next: d}\n"
            "  d: {type: template, name: reminder, next: e}\n"
            "  e: {type: end}\n"
        )
    )
    p = find(found, "service-window", "a", "duration")
    assert "'b'" in p.message
    assert not [q for q in found if q.code == "service-window" and q.node == "c"]


def test_triggers_checks() -> None:
    found = problems(flow("  a: {type: end}\n", extra="triggers: [{keyword: [Hi, hi]}]\n"))
    find(found, "duplicate-keyword", None, "triggers[0].keyword[1]")
    found = problems(flow("  a: {type: end}\n", extra=""))
    find(found, "no-triggers", None, "triggers")


def test_jumps_to_other_flows(tmp_path: Path) -> None:
    (tmp_path / "one.yaml").write_text(
        "id: one\nstart: a\ntriggers: [{api: true}]\nnodes:\n"
        "  a: {type: subflow, flow: two, node: nope, next: b}\n  b: {type: goto, flow: three}\n"
    )
    (tmp_path / "two.yaml").write_text("id: two\nstart: a\ntriggers: [{api: true}]\nnodes:\n  a: {type: end}\n")
    (tmp_path / "dup.yaml").write_text("id: two\nstart: a\ntriggers: [{api: true}]\nnodes:\n  a: {type: end}\n")
    one, _, dup = check_flow_files([tmp_path / "one.yaml", tmp_path / "two.yaml", tmp_path / "dup.yaml"])
    assert "no node 'nope'" in find(one.problems, "unknown-target", "a", "node").message
    assert find(one.problems, "unknown-flow", "b", "flow").severity is Severity.WARNING
    find(dup.problems, "duplicate-flow-id", None, "id")


def test_errors_come_before_warnings() -> None:
    defn = load_flow_text(flow("  a: {type: message, text: hi}\n  lost: {type: end}\n"))
    found = validate_flow(defn)
    severities = [p.severity for p in found]
    assert severities == sorted(severities, key=lambda s: s is not Severity.ERROR)


@pytest.mark.parametrize("bad", ["0s", "-5m", "1y", "400d", "m", ""])
def test_bad_durations(bad: str) -> None:
    report_problems = problems(flow(f"  a: {{type: wait, duration: '{bad}', next: e}}\n  e: {{type: end}}\n"))
    p = find(report_problems, "schema", "a", "duration")
    assert p.is_error and p.line == 5
