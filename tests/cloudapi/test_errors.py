"""Graph error envelopes and async `errors[]` items become typed, classified exceptions."""

from __future__ import annotations

import pytest

from waflow.canonical import ErrorDetail
from waflow.cloudapi import (
    CloudAPIError,
    ErrorClass,
    InvalidRecipientError,
    OutsideWindowError,
    PermanentError,
    RetryableError,
    RetryScope,
    TemplateError,
    TokenError,
    async_error_exception,
    classify_async_error,
    parse_error_envelope,
)
from waflow.cloudapi.exceptions import exception_for


def envelope(code: int, **extra: object) -> dict[str, object]:
    return {"error": {"message": f"(#{code}) something", "type": "OAuthException", "code": code,
                      "fbtrace_id": "Az8or2yhqkZfEZ", **extra}}


def test_full_envelope_is_parsed() -> None:
    body = envelope(130429, error_subcode=2494055, is_transient=True, error_user_title="Slow down",
                    error_user_msg="Too fast", error_data={"messaging_product": "whatsapp",
                                                           "details": "Cloud API message throughput has been reached."})
    info = parse_error_envelope(body, 400, retry_after_header=None)
    exc = exception_for(info)
    assert isinstance(exc, RetryableError)
    assert (exc.code, exc.subcode, exc.http_status, exc.fbtrace_id) == (130429, 2494055, 400, "Az8or2yhqkZfEZ")
    assert exc.details == "Cloud API message throughput has been reached."
    assert exc.title == "Rate limit hit"  # from the table when the envelope has none
    assert info.user_title == "Slow down" and info.user_message == "Too fast" and info.is_transient is True
    assert exc.retry_after_s == 1.0 and exc.scope is RetryScope.NUMBER and exc.retryable
    assert not exc.outcome_unknown
    text = str(exc)
    assert "130429" in text and "throughput" in text and "Az8or2yhqkZfEZ" in text and "HTTP 400" in text


@pytest.mark.parametrize(
    ("code", "status", "cls"),
    [
        (190, 401, TokenError),
        (0, 401, TokenError),
        (104, 401, TokenError),
        (130429, 400, RetryableError),
        (131056, 400, RetryableError),
        (131000, 500, RetryableError),
        (131016, 500, RetryableError),
        (2, 503, RetryableError),
        (131047, 400, OutsideWindowError),
        (131026, 400, InvalidRecipientError),
        (131030, 400, InvalidRecipientError),
        (132000, 400, TemplateError),
        (132001, 404, TemplateError),
        (132012, 400, TemplateError),
        (132015, 400, TemplateError),
        (100, 400, PermanentError),
        (131009, 400, PermanentError),
        (131008, 400, PermanentError),
        (250, 403, PermanentError),  # 200–299 permission family
    ],
)
def test_each_code_maps_to_its_class(code: int, status: int, cls: type[CloudAPIError]) -> None:
    exc = exception_for(parse_error_envelope(envelope(code), status))
    assert type(exc) is cls
    assert exc.code == code and exc.http_status == status


def test_pair_rate_limit_is_scoped_to_the_recipient() -> None:
    exc = exception_for(parse_error_envelope(envelope(131056), 400))
    assert exc.scope is RetryScope.RECIPIENT and exc.retry_after_s == 6.0


def test_unknown_codes_fall_back_on_http_status_and_is_transient() -> None:
    assert parse_error_envelope(envelope(987654), 500).error_class is ErrorClass.RETRYABLE
    assert parse_error_envelope(envelope(987654), 400).error_class is ErrorClass.PERMANENT
    assert parse_error_envelope(envelope(987654, is_transient=True), 400).error_class is ErrorClass.RETRYABLE
    assert parse_error_envelope(envelope(987654), 401).error_class is ErrorClass.TOKEN


def test_non_envelope_bodies_are_classified_by_status() -> None:
    info = parse_error_envelope(None, 502)
    assert info.code is None and info.error_class is ErrorClass.RETRYABLE and "502" in info.message
    assert parse_error_envelope("<html>", 400).error_class is ErrorClass.PERMANENT
    assert parse_error_envelope({"error": "nope"}, 503).error_class is ErrorClass.RETRYABLE


def test_retry_after_header_lengthens_the_suggested_delay() -> None:
    assert parse_error_envelope(envelope(130429), 400, retry_after_header=7).retry_after_s == 7
    assert parse_error_envelope(envelope(100), 400, retry_after_header=7).retry_after_s is None


def test_string_codes_are_tolerated() -> None:
    assert parse_error_envelope({"error": {"code": "131056", "error_subcode": "1"}}, 400).code == 131056


def test_async_error_items_use_the_same_classification() -> None:
    item = {"code": 131047, "title": "Re-engagement message", "message": "Re-engagement message",
            "error_data": {"details": "Message failed to send because more than 24 hours have passed"},
            "href": "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/"}
    info = classify_async_error(item)
    assert info.error_class is ErrorClass.OUTSIDE_WINDOW and info.http_status == 400
    assert info.details.startswith("Message failed")
    exc = async_error_exception(item)
    assert isinstance(exc, OutsideWindowError)
    assert isinstance(async_error_exception({"code": 131026, "title": "Message undeliverable"}), InvalidRecipientError)
    assert classify_async_error({"code": 131000}).error_class is ErrorClass.RETRYABLE
    assert classify_async_error({"code": 424242}).error_class is ErrorClass.PERMANENT


def test_async_error_from_canonical_error_detail() -> None:
    detail = ErrorDetail(code=131049, title="not delivered", details="ecosystem")
    info = classify_async_error(detail)
    assert info.error_class is ErrorClass.INVALID_RECIPIENT and info.details == "ecosystem"


def test_async_error_details_at_the_top_level_are_kept() -> None:
    """Older payloads put `details` at the error's top level; an `error_data` without details falls back to it."""
    old = {"code": 131047, "title": "Re-engagement message", "details": "more than 24 hours"}
    assert classify_async_error(old).details == "more than 24 hours"
    assert classify_async_error({**old, "error_data": {}}).details == "more than 24 hours"
    assert classify_async_error({**old, "error_data": {"details": "newer"}}).details == "newer"
