"""Templates and expressions have a work budget (charged by the work done, literal sizes included) and a
wall-clock deadline; heavy ones stop cleanly with the limit named, and run beside the event loop, not on it."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from waflow.engine import ExpressionError, check_flow_text, make_context, render_text
from waflow.engine.flows.expressions import default_engine
from waflow.engine.flows.sandbox import ExpressionLimits, expression_turn, run_bounded

CTX = make_context(contact={"name": "Ann"}, vars={"items": [{"n": i} for i in range(50)]})
# the finding of issue 16: one message's template with a heavy `sort` held the process for seconds
HEAVY_SORT = "{% for i in range(300) %}{{ (range(10000) | list | sort)[0] }}{% endfor %}"


# the default work budget with a deadline far away: which limit stops a template does not depend on the machine
WORK_ONLY = ExpressionLimits(seconds=10.0, turn_seconds=None)


def _fails(template: str, limit: str | None = None) -> ExpressionError:
    with expression_turn(WORK_ONLY), pytest.raises(ExpressionError) as caught:
        render_text(template, CTX)
    if limit is not None:
        assert caught.value.limit == limit, caught.value
    return caught.value


def test_heavy_sort_stops_at_the_work_budget_quickly() -> None:
    started = time.perf_counter()
    exc = _fails(HEAVY_SORT, "work")
    assert time.perf_counter() - started < 1.0
    assert "limit exceeded" in exc.problem and "500,000 units" in exc.problem
    with pytest.raises(ExpressionError) as caught:  # the default limits: the budget or the 0.1 s deadline
        render_text(HEAVY_SORT, CTX)
    assert caught.value.limit in ("work", "time")


@pytest.mark.parametrize(
    "template",
    [
        # nested list literals of big values: each level 10x the last, never measured before
        "{% set a = 'x' * 99999 %}{% set b = [a, a, a, a, a, a, a, a, a, a] %}{{ b | length }}",
        "{% set a = 'x' * 60000 %}{{ {'k': a, 'l': a} | length }}",
        "{% set a = 'x' * 60000 %}{{ (a, a) | length }}",
    ],
)
def test_literals_are_measured(template: str) -> None:
    assert "longer than 100000" in _fails(template).problem


def test_literal_text_written_in_a_loop_is_charged() -> None:
    # a `{% set %}` block collects what its loop writes without it reaching the output's length check
    template = "{% set x %}{% for i in range(10000) %}" + "y" * 2000 + "{% endfor %}{% endset %}{{ x | length }}"
    _fails(template, "work")


def test_quadratic_growth_is_charged() -> None:
    template = (
        "{% set ns = namespace(l=[]) %}{% for i in range(10000) %}{% set ns.l = ns.l + [i] %}{% endfor %}"
        "{{ ns.l | length }}"
    )
    _fails(template, "work")


def test_ordinary_templates_are_untouched() -> None:
    assert render_text("Hi {{ contact.name }}: {{ vars.items | map(attribute='n') | sum }}", CTX) == "Hi Ann: 1225"
    rows = "{% for i in vars.items | sort(attribute='n', reverse=true) %}{{ i.n }},{% endfor %}"
    assert render_text(rows, CTX).startswith("49,48,")
    assert render_text("{% for a, b in [(1, 2)] %}{{ a + b }}{% endfor %} {{ {'a': [1, 2]}.a[1] }}", CTX) == "3 2"


def test_the_deadline_stops_a_template_within_budget() -> None:
    limits = ExpressionLimits(work=10**9, seconds=0.02, turn_seconds=None)
    started = time.perf_counter()
    with expression_turn(limits), pytest.raises(ExpressionError) as caught:
        render_text("{% for i in range(10000) %}{{ (range(5000) | list | sort)[0] }}{% endfor %}", CTX)
    assert caught.value.limit == "time" and "0.02 s" in caught.value.problem
    assert time.perf_counter() - started < 0.5


def test_one_events_templates_share_a_deadline() -> None:
    limits = ExpressionLimits(work=10**9, seconds=1.0, turn_seconds=0.03)
    slow = "{% for i in range(10000) %}{{ (range(3000) | list | sort)[0] }}{% endfor %}"
    with expression_turn(limits):
        with pytest.raises(ExpressionError) as caught:
            render_text(slow, CTX)
        assert caught.value.limit == "turn_time"
        with pytest.raises(ExpressionError) as again:  # nothing left for this event
            render_text("{{ contact.name }}", CTX)
        assert again.value.limit == "turn_time" and "together" in again.value.problem
    assert render_text("{{ contact.name }}", CTX) == "Ann"  # the next event has its own


async def test_cheap_renders_stay_on_the_loop_heavy_ones_run_beside_it() -> None:
    threads: list[str] = []

    def render(template: str) -> str:
        out = default_engine.render_text(template, CTX)
        threads.append(threading.current_thread().name)
        return out

    assert await run_bounded(render, "Hi {{ contact.name }}") == "Hi Ann"
    assert threads == [threading.current_thread().name]

    # within its budget but far over the inline slice: the loop keeps running meanwhile
    limits = ExpressionLimits(work=10**9, seconds=5.0, turn_seconds=None)
    heavy = "{% for i in range(60) %}{{ (range(10000) | list | sort)[0] }}{% endfor %}"
    gaps: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0)  # a turn of the loop, as a webhook or /healthz would need
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    task = asyncio.create_task(ticker())
    with expression_turn(limits):
        started = time.perf_counter()
        out = await run_bounded(render, heavy)
        took = time.perf_counter() - started
    done.set()
    await task
    assert out == "0" * 60
    assert threads[-1].startswith("waflow-expr")
    assert max(gaps) < max(0.1, took / 3), (max(gaps), took)  # the loop was never held for the render


def test_a_template_over_budget_for_every_message_is_refused_at_deploy() -> None:
    text = (
        "id: t\ntriggers: [{keyword: go}]\nstart: big\nnodes:\n"
        f"  big: {{type: message, text: \"{HEAVY_SORT}\", next: ok}}\n"
        "  ok: {type: message, text: \"{{ range(5) | list | sort | join(',') }} {{ contact.name }}\", next: fin}\n"
        "  fin: {type: end}\n"
    )
    started = time.perf_counter()
    report = check_flow_text(text)
    assert time.perf_counter() - started < 1.0
    [problem] = report.errors
    assert (problem.code, problem.node, problem.field, problem.line) == ("over-limit", "big", "text", 5)
    assert "limit exceeded" in problem.message
