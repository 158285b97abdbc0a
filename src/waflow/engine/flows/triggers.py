"""What starts a flow: keywords, a regex, any first message, a template quick-reply payload, an ad referral.

A flow can always be started through the API; `{api: true}` may be listed to say so explicitly.
Each trigger is a one-key mapping: `{keyword: [hi, menu]}`, `{regex: '^order \\d+'}`,
`{any_first_message: true}`, `{payload: CANCEL}`, `{referral: {source_id: '1203'}}`, `{api: true}`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Discriminator, Field, Tag

from waflow.engine.flows import regex as linear


class _Trigger(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @property
    def kind(self) -> str:
        return next(iter(type(self).model_fields))


def _as_list(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


_Word = Annotated[str, Field(min_length=1, max_length=256)]
_WordList = Annotated[list[_Word], Field(min_length=1)]
_Words = Annotated[_WordList, BeforeValidator(_as_list, json_schema_input_type=_Word | _WordList)]


class KeywordTrigger(_Trigger):
    """The whole message equals one of the keywords (trimmed, case-insensitive)."""

    keyword: _Words

    def matches(self, text: str | None) -> bool:
        return text is not None and text.strip().casefold() in {k.strip().casefold() for k in self.keyword}


class RegexTrigger(_Trigger):
    """The message text matches the regex (searched, case-insensitive; RE2, in linear time: see `regex`)."""

    regex: str = Field(
        min_length=1,
        max_length=1000,
        description="RE2 syntax (linear time: no backreferences or look-around), searched case-insensitively",
    )

    def matches(self, text: str | None) -> bool:
        return linear.matches(self.regex, text, ignore_case=True)


class FirstMessageTrigger(_Trigger):
    """Any message from a contact with no session (a fallback: keyword triggers are tried first)."""

    any_first_message: Literal[True]


class PayloadTrigger(_Trigger):
    """A tap on a template's quick-reply button carrying one of these payloads."""

    payload: _Words

    def matches(self, payload: str | None) -> bool:
        return payload is not None and payload in self.payload


class ReferralMatch(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    source_id: str | None = Field(None, description="the ad id; omit to match any ad")
    source_type: Literal["ad", "post"] | None = None


class ReferralTrigger(_Trigger):
    """The user came from a click-to-WhatsApp ad (`referral` on the first message)."""

    referral: ReferralMatch = Field(default_factory=ReferralMatch)

    def matches(self, referral: dict[str, Any] | None) -> bool:
        if not referral:
            return False
        want = self.referral
        if want.source_id is not None and str(referral.get("source_id")) != want.source_id:
            return False
        return want.source_type is None or referral.get("source_type") == want.source_type


class ApiTrigger(_Trigger):
    """Started by the admin API (always allowed; listing it only documents it)."""

    api: Literal[True]


_TRIGGERS: dict[str, type[BaseModel]] = {
    "keyword": KeywordTrigger,
    "regex": RegexTrigger,
    "any_first_message": FirstMessageTrigger,
    "payload": PayloadTrigger,
    "referral": ReferralTrigger,
    "api": ApiTrigger,
}


def _trigger_tag(value: Any) -> str | None:
    if isinstance(value, _Trigger):
        return value.kind
    if isinstance(value, dict) and len(value) == 1:
        key = next(iter(value))
        return key if key in _TRIGGERS else None
    return None


Trigger = Annotated[
    Annotated[KeywordTrigger, Tag("keyword")]
    | Annotated[RegexTrigger, Tag("regex")]
    | Annotated[FirstMessageTrigger, Tag("any_first_message")]
    | Annotated[PayloadTrigger, Tag("payload")]
    | Annotated[ReferralTrigger, Tag("referral")]
    | Annotated[ApiTrigger, Tag("api")],
    Discriminator(
        _trigger_tag,
        custom_error_type="invalid_trigger",
        custom_error_message=(
            "a trigger is a one-key mapping: keyword, regex, any_first_message, payload, referral or api"
        ),
    ),
]
