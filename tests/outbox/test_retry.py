"""The retry policy's bounds: a code's own tighter bound counts only tries that failed with that code."""

from __future__ import annotations

from waflow.cloudapi.exceptions import CloudAPIError, exception_for, parse_error_envelope
from waflow.outbox import RetryPolicy, Verdict


def _graph_error(code: int, http_status: int = 500) -> CloudAPIError:
    body = {"error": {"message": f"(#{code}) x", "type": "OAuthException", "code": code, "fbtrace_id": "t"}}
    return exception_for(parse_error_envelope(body, http_status))


def test_131000_gives_up_after_its_own_three_tries() -> None:
    policy = RetryPolicy()
    exc = _graph_error(131000)
    assert policy.decide(exc, failures=2, throttles=0, same_code=2).verdict is Verdict.RETRY
    decision = policy.decide(exc, failures=3, throttles=0, same_code=3)
    assert decision.verdict is Verdict.FAIL and "3 tries" in decision.text


def test_earlier_failures_of_another_kind_do_not_use_up_131000s_bound() -> None:
    policy = RetryPolicy()
    # two dropped connections, then a first 131000: three failures, one of them 131000
    assert policy.decide(_graph_error(131000), failures=3, throttles=0, same_code=1).verdict is Verdict.RETRY


def test_the_general_bound_still_holds() -> None:
    policy = RetryPolicy(max_attempts=4)
    assert policy.decide(_graph_error(131000), failures=4, throttles=0, same_code=1).verdict is Verdict.FAIL
    assert policy.decide(_graph_error(131016), failures=3, throttles=0).verdict is Verdict.RETRY
    assert policy.decide(_graph_error(131016), failures=4, throttles=0).verdict is Verdict.FAIL
