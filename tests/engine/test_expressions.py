"""The expression sandbox: rendering, evaluation, caching, and hostile input refused clearly."""

from __future__ import annotations

import time

import pytest

from waflow.engine import (
    ExpressionEngine,
    ExpressionError,
    compile_expression,
    compile_template,
    evaluate,
    make_context,
    references,
    render_text,
    render_value,
)

CTX = make_context(
    contact={"name": "Ann", "wa_id": "15551234567"},
    vars={"n": 3, "items": [{"name": "pizza", "qty": 2}], "size": "large", "keys": "a var named keys"},
    message={"text": "Hi", "type": "text"},
    response={"status": 200, "json": {"status": "shipped"}},
    flow={"id": "f", "vars": {"api_base": "http://127.0.0.1:8765"}},
)


def test_render_text_and_undefined_is_empty() -> None:
    assert render_text("Hi {{ contact.name }}!", CTX) == "Hi Ann!"
    assert render_text("[{{ vars.missing }}][{{ vars.missing.deeper.still }}][{{ nope }}]", CTX) == "[][][]"
    assert render_text("{{ flow.vars.api_base }}/orders", CTX) == "http://127.0.0.1:8765/orders"
    assert render_text("no template", CTX) == "no template"
    assert render_text("{% for i in vars.items %}{{ i.qty }}x {{ i.name }}{% endfor %}", CTX) == "2x pizza"
    assert render_text("{{ vars.keys }}", CTX) == "a var named keys"  # a key wins over the dict method


def test_evaluate_conditions() -> None:
    assert evaluate("vars.size == 'large' and vars.n > 2", CTX) is True
    assert evaluate("response.json.status in ['shipped', 'out_for_delivery']", CTX) is True
    assert evaluate("{{ vars.n * 2 }}", CTX) == 6
    assert evaluate("vars.missing", CTX) is None
    assert evaluate("'x' in message.text | lower", CTX) is False


def test_render_value_keeps_native_types() -> None:
    value = {"n": "{{ vars.n }}", "s": "n={{ vars.n }}", "l": ["{{ vars.items | length }}", 5], "b": True}
    assert render_value(value, CTX) == {"n": 3, "s": "n=3", "l": [1, 5], "b": True}


def test_compiled_templates_are_cached() -> None:
    engine = ExpressionEngine(cache_size=2)
    first = engine.compile_template("{{ vars.n }}")
    assert engine.compile_template("{{ vars.n }}") is first
    engine.compile_template("{{ 1 }}")
    engine.compile_template("{{ 2 }}")
    assert engine.compile_template("{{ vars.n }}") is not first  # evicted (LRU of 2)
    assert compile_expression("vars.n")(CTX) == 3
    with pytest.raises(ExpressionError):
        engine.compile_template("{{ oops")
    with pytest.raises(ExpressionError):  # the failure is cached too and raised again
        engine.compile_template("{{ oops")


def test_references() -> None:
    refs = references(compile_template("{{ vars.a }} {{ vars['b'] }} {{ contact.name }} {% set z = 1 %}{{ z }}"))
    assert refs.variables == {"a", "b"} and refs.names == {"vars", "contact"}


def test_output_limit() -> None:
    with pytest.raises(ExpressionError, match="longer than 10"):
        render_text("{{ contact.name }} and some more text", CTX, max_length=10)


def test_error_names_the_expression_and_problem() -> None:
    with pytest.raises(ExpressionError) as info:
        evaluate("vars.n / 0", CTX)
    assert info.value.expression == "vars.n / 0" and "ZeroDivisionError" in info.value.problem
    assert "vars.n / 0" in str(info.value)


HOSTILE = [
    # attribute escapes
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ ''['__class__'] }}",
    "{{ x.mro() }}",
    "{{ cycler.__init__.__globals__.os }}",
    "{{ self._TemplateReference__context }}",
    "{{ {}|attr('__class__') }}",
    "{{ contact[' __class__'.strip()] }}",
    "{{ vars.items.append(1) }}",
    "{{ vars.items.pop() }}",
    "{{ dict.fromkeys([1]) }}",
    "{{ request.application.__globals__ }}",
    "{{ lipsum.__globals__ }}",
    "{{ (1).__class__.__base__.__subclasses__() }}",
    # format-string tricks
    "{{ '{0.__class__}'.format(1) }}",
    "{{ '{0:>999999999}'.format(1) }}",
    "{{ '%999999999d' % 1 }}",
    "{{ '%*d' % (999999999, 1) }}",
    "{{ 'x'|center(999999999) }}",
    "{{ 'x'.ljust(999999999) }}",
    "{{ 'x'|format() }}",
    # resource exhaustion
    "{{ range(10**9) | list }}",
    "{{ 'a' * 10**9 }}",
    "{{ [1] * 10**9 }}",
    "{{ 9 ** (9 ** 9) }}",
    "{{ 10 ** 100000 }}",
    "{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}",
    "{% set s = 'aaaaaaaaaa' %}" + "{% set s = s ~ s %}" * 40,
    "{% set ns = namespace(s='ab') %}{% for i in range(100) %}{% set ns.s = ns.s + ns.s %}{% endfor %}",
    "{{ 'x'.replace('x', 'y' * 1000).replace('y', 'z' * 1000) }}",
    "{{ 'ab'|replace('', 'c' * 99999) }}",
    "{{ lipsum(100000) }}",
    "{{ range(10000) | join('x' * 99999) }}",
    "{{ ('x' * 99999).join(range(10000) | map('string')) }}",
    "{{ [[1] * 99999] * 99999 }}",
    "{{ ['a' * 99999] * 99999 }}",
    "{{ vars.items | map(attribute='__class__') | list }}",
    "{{ vars.items | sort(attribute='__class__') }}",
    "{{ vars.items | map('center', 999999) | list }}",
    # recursion, imports, nesting
    "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}",
    "{% for x in [[1]] recursive %}{{ loop(x) }}{% endfor %}",
    "{% include 'x' %}",
    "{% import 'os' as os %}",
    "{% from 'x' import y %}",
    "{% extends 'base' %}",
    "{{ " + "(" * 3000 + "1" + ")" * 3000 + " }}",
    "{{ " + "[" * 200 + "]" * 200 + " }}",
    "{% if 1 %}" * 100 + "x" + "{% endif %}" * 100,
    "{{ waflow_iter }}",
    "{{ }}",
]


@pytest.mark.parametrize("source", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_templates_are_refused_clearly(source: str) -> None:
    started = time.monotonic()
    with pytest.raises(ExpressionError) as info:
        render_text(source, CTX)
    assert info.value.problem and info.value.expression == source
    assert time.monotonic() - started < 2


@pytest.mark.parametrize(
    "source",
    ["().__class__", "vars.__dict__", "range(100000)", "'a' * 1000000", "lipsum", "vars.items.clear()", "1 +"],
)
def test_hostile_expressions_are_refused(source: str) -> None:
    try:
        value = evaluate(source, CTX)
    except ExpressionError:
        return
    assert value is None  # an undefined name evaluates to nothing, never to an internal object


def test_hostile_values_in_the_context_stay_data() -> None:
    ctx = make_context(message={"text": "{{ ''.__class__ }}"})
    assert render_text("{{ message.text }}", ctx) == "{{ ''.__class__ }}"  # data is never re-evaluated


def test_budget_is_per_render() -> None:
    source = "{% for i in range(9000) %}{% endfor %}ok"
    for _ in range(3):
        assert render_text(source, CTX) == "ok"
