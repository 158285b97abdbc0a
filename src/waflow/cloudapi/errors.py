"""The one place that knows each Cloud API error code.

`ERROR_TABLE` maps a Graph / WhatsApp error code to what it means on the wire (title, HTTP
status, whether Meta reports it synchronously or in a status webhook) and to what a sender
should do about it (its `ErrorClass` and a suggested retry delay). The client classifies
errors with it; the emulator builds its error envelopes from it.

Access-token problems are told apart here too (`token_problem`, `token_problem_text`): a token that
expired (190 with subcode 463), a wrong one (190 without that subcode: malformed, revoked, another
app's), a missing one (104), and one that lacks a permission (10: `whatsapp_business_messaging` to
send, `whatsapp_business_management` for templates) each read as their own message.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any


class ErrorClass(enum.StrEnum):
    """What a sender should do with an error."""

    RETRYABLE = "retryable"  # transient: back off and try again
    TOKEN = "token"  # access token expired/invalid: refresh once, replay
    OUTSIDE_WINDOW = "outside_window"  # 24 h customer-service window closed: send a template
    INVALID_RECIPIENT = "invalid_recipient"  # the number cannot receive this message
    TEMPLATE = "template"  # template missing, not approved, paused, wrong parameters
    PERMANENT = "permanent"  # fix the request or the account; retrying will not help


class RetryScope(enum.StrEnum):
    """Who a retryable error slows down: everything from the app, one number, one recipient."""

    APP = "app"
    NUMBER = "number"
    RECIPIENT = "recipient"


@dataclass(frozen=True, slots=True)
class ErrorSpec:
    code: int
    title: str
    http_status: int
    error_class: ErrorClass
    details: str = ""
    asynchronous: bool = False  # reported in a `failed` status webhook, not in the HTTP answer
    retry_after_s: float | None = None  # suggested first backoff for retryable errors
    scope: RetryScope = RetryScope.NUMBER
    max_attempts: int | None = None  # a bound tighter than the sender's default, if any


def _spec(code: int, title: str, http: int, cls: ErrorClass, details: str = "", **kw: Any) -> ErrorSpec:
    return ErrorSpec(code, title, http, cls, details, **kw)


RETRY, TOKEN, WINDOW, RCPT, TMPL, PERM = (
    ErrorClass.RETRYABLE,
    ErrorClass.TOKEN,
    ErrorClass.OUTSIDE_WINDOW,
    ErrorClass.INVALID_RECIPIENT,
    ErrorClass.TEMPLATE,
    ErrorClass.PERMANENT,
)

ERROR_TABLE: dict[int, ErrorSpec] = {
    s.code: s
    for s in (
        _spec(0, "AuthException", 401, TOKEN, "Unable to authenticate the app user."),
        _spec(1, "API Unknown", 400, RETRY, "Invalid request or possible server error.",
              retry_after_s=2.0, max_attempts=2),
        _spec(2, "API Service", 503, RETRY, "Temporary due to downtime or due to being overloaded.",
              retry_after_s=2.0),
        _spec(3, "API Method", 500, PERM, "Capability or permissions issue."),
        _spec(4, "Too many calls", 400, RETRY, "The app has reached its API call rate limit.",
              retry_after_s=60.0, scope=RetryScope.APP),
        _spec(10, "Permission Denied", 403, PERM, "Permission is either not granted or has been removed."),
        _spec(33, "Parameter value is not valid", 400, PERM, "The business phone number has been deleted."),
        _spec(100, "Invalid parameter", 400, PERM,
              "The request included one or more unsupported or misspelled parameters."),
        _spec(104, "An access token is required to request this resource.", 401, TOKEN),
        _spec(190, "Invalid OAuth access token", 401, TOKEN,
              "The access token is not valid: it is wrong, revoked or belongs to another app."),
        _spec(200, "Permissions error", 403, PERM, "The app lacks access to this WhatsApp Business Account."),
        _spec(368, "Temporarily blocked for policies violations", 403, PERM),
        _spec(80007, "Rate limit issues", 400, RETRY, "The WhatsApp Business Account has reached its rate limit.",
              retry_after_s=60.0, scope=RetryScope.APP),
        _spec(130429, "Rate limit hit", 400, RETRY, "Cloud API message throughput has been reached.",
              retry_after_s=1.0),
        _spec(130472, "User's number is part of an experiment", 400, PERM,
              "Failed to send message because this user's phone number is part of an experiment.",
              asynchronous=True),
        _spec(130497, "Business account is restricted from messaging users in this country", 403, RCPT),
        _spec(131000, "Something went wrong", 500, RETRY, "Message failed to send due to an unknown error.",
              retry_after_s=2.0, max_attempts=3),
        _spec(131005, "Access denied", 403, PERM, "Permission is either not granted or has been removed."),
        _spec(131008, "Required parameter is missing", 400, PERM, "The request is missing a required parameter."),
        _spec(131009, "Parameter value is not valid", 400, PERM, "One or more parameter values are invalid."),
        _spec(131016, "Service unavailable", 500, RETRY, "A service is temporarily unavailable.", retry_after_s=2.0),
        _spec(131021, "Recipient cannot be sender", 400, RCPT, "Sender and recipient phone number is the same."),
        _spec(131026, "Message undeliverable", 400, RCPT, "Unable to deliver message.", asynchronous=True),
        _spec(131030, "Recipient phone number not in allowed list", 400, RCPT,
              "Add recipient phone number to recipient list and try again."),
        _spec(131031, "Account has been locked", 403, PERM),
        _spec(131037, "WhatsApp provided number needs display name approval before message can be sent.", 400, PERM),
        _spec(131042, "Business eligibility payment issue", 400, PERM,
              "There was an error related to your payment method."),
        _spec(131045, "Incorrect certificate", 500, PERM),
        _spec(131047, "Re-engagement message", 400, WINDOW,
              "Message failed to send because more than 24 hours have passed since the customer "
              "last replied to this number.", asynchronous=True),
        _spec(131048, "Spam rate limit hit", 400, RETRY,
              "Message failed to send because there are restrictions on how many messages can be "
              "sent from this phone number.", retry_after_s=60.0),
        _spec(131049, "This message was not delivered to maintain healthy ecosystem engagement.", 400, RCPT,
              asynchronous=True),
        _spec(131050, "Unable to deliver the message. This recipient has chosen to stop receiving "
              "marketing messages on WhatsApp from your business.", 400, RCPT, asynchronous=True),
        _spec(131051, "Unsupported message type", 400, PERM, "Message type is not currently supported."),
        _spec(131052, "Media download error", 400, PERM, "Unable to download the media sent by the user."),
        _spec(131053, "Media upload error", 400, PERM, "Unable to upload the media used in the message.",
              asynchronous=True),
        _spec(131056, "(Business Account, Consumer Account) pair rate limit hit", 400, RETRY,
              "Message failed to send because there were too many messages sent from this phone "
              "number to the same phone number in a short period of time.",
              retry_after_s=6.0, scope=RetryScope.RECIPIENT),
        _spec(131057, "Account in maintenance mode", 500, RETRY,
              "Business Account is in maintenance mode.", retry_after_s=60.0),
        _spec(131062, "Business-scoped user id recipients are not supported for this message", 400, RCPT),
        _spec(131063, "Marketing messages are disabled for this business on Cloud API", 400, PERM),
        _spec(131064, "Messaging limit reached due to template category violations", 400, PERM),
        _spec(132000, "Number of parameters does not match the expected number of params", 400, TMPL),
        _spec(132001, "Template name does not exist in the translation", 404, TMPL),
        _spec(132005, "Translated text too long", 400, TMPL),
        _spec(132007, "Template Format Character Policy Violated", 400, TMPL),
        _spec(132008, "Template parameter value is not valid", 400, TMPL),
        _spec(132012, "Parameter format does not match format in the created template", 400, TMPL),
        _spec(132015, "Template is paused", 400, TMPL, "Template is paused due to low quality."),
        _spec(132016, "Template is disabled", 400, TMPL, "Template has been paused too many times due to low quality."),
        _spec(132068, "Flow is in blocked state", 400, PERM),
        _spec(132069, "Flow is in throttled state", 400, RETRY, retry_after_s=3600.0),
        _spec(133000, "Incomplete deregistration", 500, PERM),
        _spec(133004, "Server temporarily unavailable", 503, RETRY, retry_after_s=5.0),
        _spec(133005, "Two step verification PIN mismatch", 400, PERM),
        _spec(133006, "Phone number re-verification needed", 400, PERM),
        _spec(133008, "Too many two step verification PIN guesses for this phone number", 400, PERM),
        _spec(133009, "Two step verification PIN was entered too quickly", 400, PERM),
        _spec(133010, "Phone number not registered on the Whatsapp Business Platform", 400, PERM),
        _spec(133015, "Please wait a few minutes before attempting to register this phone number", 400, RETRY,
              retry_after_s=300.0),
        _spec(133016, "Account register deregister rate limit exceeded", 400, RETRY, retry_after_s=600.0),
        _spec(134011, "WhatsApp Payments terms of service not accepted", 400, PERM),
        _spec(135000, "Generic user error", 400, PERM),
        _spec(2388019, "Message template count limit reached", 400, PERM),
        _spec(2494100, "Phone number in maintenance mode", 500, RETRY, retry_after_s=120.0),
    )
}

# 190 by subcode (Graph's `error_subcode`): only 463 means the token's time ran out.
EXPIRED_SUBCODE = 463
SUBCODE_TABLE: dict[tuple[int, int], ErrorSpec] = {
    (s.code, sub): s
    for sub, s in (
        (458, _spec(190, "App not installed", 401, TOKEN,
                    "The user has not authorized the app: the token is not valid.")),
        (460, _spec(190, "Access token invalidated", 401, TOKEN,
                    "The session was invalidated (password changed or reset for security): the token is not valid.")),
        (EXPIRED_SUBCODE, _spec(190, "Access token has expired", 401, TOKEN,
                                "The access token's expiry time has passed: generate a new one.")),
        (464, _spec(190, "Unconfirmed user", 401, TOKEN,
                    "The token's user is not confirmed: the token is not valid.")),
        (467, _spec(190, "Invalid access token", 401, TOKEN,
                    "The access token is not valid: it is wrong, revoked or belongs to another app.")),
        (492, _spec(190, "Invalid session", 401, TOKEN,
                    "The token's user is no longer an admin of the asset: the token is not valid.")),
    )
}

# Codes a sender should treat as throttling (back off, do not count against the message).
THROTTLING_CODES: frozenset[int] = frozenset({4, 80007, 130429, 131048, 131056, 133016})


def spec_for(code: int, subcode: int | None = None) -> ErrorSpec | None:
    """The table entry for `code` (and `subcode`, where it changes the meaning: 190/463 is an expired
    token, 190 alone a wrong one), or None for a code the table does not know."""
    if subcode is not None:
        by_subcode = SUBCODE_TABLE.get((code, subcode))
        if by_subcode is not None:
            return by_subcode
    spec = ERROR_TABLE.get(code)
    if spec is None and 200 <= code <= 299:
        spec = ERROR_TABLE[200]
    return spec


def classify(code: int, http_status: int | None = None) -> ErrorClass:
    """The class of an error code; unknown codes fall back on the HTTP status."""
    spec = spec_for(code)
    if spec is not None:
        return spec.error_class
    if http_status is not None and (http_status >= 500 or http_status == 429):
        return ErrorClass.RETRYABLE
    if http_status == 401:
        return ErrorClass.TOKEN
    return ErrorClass.PERMANENT


# -- access-token problems ---------------------------------------------------------------------

SCOPE_MESSAGING = "whatsapp_business_messaging"
SCOPE_MANAGEMENT = "whatsapp_business_management"
WHATSAPP_SCOPES: tuple[str, ...] = (SCOPE_MESSAGING, SCOPE_MANAGEMENT)
SCOPE_PURPOSE: dict[str, str] = {
    SCOPE_MESSAGING: "to send messages and media",
    SCOPE_MANAGEMENT: "to manage templates and read the number's settings",
}
PERMISSION_CODE = 10  # "Permission denied": the token lacks a permission (scope) the call needs


class TokenProblem(enum.StrEnum):
    """What is wrong with an access token, as an operator has to fix it."""

    MISSING = "missing"  # 104: no token was sent
    INVALID = "invalid"  # 190 (0) without subcode 463: wrong, malformed, revoked, another app's
    EXPIRED = "expired"  # 190 with subcode 463: its time ran out
    MISSING_SCOPE = "missing_scope"  # 10, or debug_token shows the scope is not granted


def token_problem(code: int | None, subcode: int | None = None) -> TokenProblem | None:
    """The token problem a Graph error stands for, or None when it is not about the token."""
    if code == 190:
        return TokenProblem.EXPIRED if subcode == EXPIRED_SUBCODE else TokenProblem.INVALID
    if code == 0:
        return TokenProblem.INVALID
    if code == 104:
        return TokenProblem.MISSING
    if code == PERMISSION_CODE:
        return TokenProblem.MISSING_SCOPE
    return None


def missing_scope_text(scope: str) -> str:
    purpose = SCOPE_PURPOSE.get(scope, "for this call")
    return (f"the access token lacks the {scope} permission, needed {purpose}: grant it to the token's "
            "(system) user and generate a new token")


def token_problem_text(
    problem: TokenProblem, *, subcode: int | None = None, scope: str | None = None, expired_at: str | None = None
) -> str:
    """The operator-facing sentence for a token problem (never contains the token)."""
    if problem is TokenProblem.EXPIRED:
        when = f" on {expired_at}" if expired_at else ""
        return (f"the access token has expired{when} (Graph error 190/463): generate a new one (a system user "
                "token that never expires), or turn a user token into a long-lived one with `waflow token exchange`")
    if problem is TokenProblem.INVALID:
        spec = SUBCODE_TABLE.get((190, subcode)) if subcode is not None else None
        if spec is not None:
            why = f"190/{subcode}: {spec.title.lower()}"
        else:
            why = "190 without the expiry subcode: a wrong, malformed, revoked or another app's token"
        return f"the access token is not valid (Graph error {why}): check the number's token setting"
    if problem is TokenProblem.MISSING_SCOPE:
        return missing_scope_text(scope) if scope else (
            "the access token lacks a permission this call needs (Graph error 10)")
    return "no access token was sent (Graph error 104)"
