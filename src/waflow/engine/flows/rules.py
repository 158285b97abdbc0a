"""How a `question` node checks an answer: `validate: email`, `validate: {regex: '^\\d{6}$'}`, ..."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Discriminator, Field, Tag

MediaKind = Literal["image", "video", "audio", "document", "sticker"]
RuleKind = Literal["text", "number", "email", "phone", "date", "regex", "choice", "media", "location"]
RULE_KINDS: tuple[str, ...] = ("text", "number", "email", "phone", "date", "regex", "choice", "media", "location")


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TextOptions(_Options):
    min_length: int = Field(1, ge=0, le=4096)
    max_length: int = Field(4096, ge=1, le=4096)


class NumberOptions(_Options):
    min: float | None = None
    max: float | None = None
    integer: bool = False


class DateOptions(_Options):
    formats: list[str] = Field(
        default_factory=lambda: ["%Y-%m-%d", "%d/%m/%Y", "%d.%m.%Y", "%d-%m-%Y"],
        min_length=1,
        description="strptime formats tried in order",
    )
    min_days: int | None = Field(None, description="earliest accepted date, in days from today (0 = today)")
    max_days: int | None = Field(None, description="latest accepted date, in days from today")
    weekdays_only: bool = False


class EmptyOptions(_Options):
    pass


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @property
    def kind(self) -> str:
        return next(iter(type(self).model_fields))


class TextRule(_Rule):
    text: TextOptions = Field(default_factory=TextOptions)


class NumberRule(_Rule):
    number: NumberOptions = Field(default_factory=NumberOptions)


class EmailRule(_Rule):
    email: EmptyOptions = Field(default_factory=EmptyOptions)


class PhoneRule(_Rule):
    phone: EmptyOptions = Field(default_factory=EmptyOptions)


class DateRule(_Rule):
    date: DateOptions = Field(default_factory=DateOptions)


class RegexRule(_Rule):
    regex: str = Field(
        min_length=1,
        max_length=1000,
        description="RE2 regex (linear time: no backreferences or look-around) the whole answer must match",
    )


class ChoiceRule(_Rule):
    choice: list[str] = Field(min_length=1, max_length=100, description="accepted answers (case-insensitive)")


_ALL_MEDIA: tuple[MediaKind, ...] = ("image", "video", "audio", "document", "sticker")


class MediaRule(_Rule):
    media: list[MediaKind] = Field(default_factory=lambda: list(_ALL_MEDIA))


class LocationRule(_Rule):
    location: EmptyOptions = Field(default_factory=EmptyOptions)


_RULE_CLASSES: dict[str, type[_Rule]] = {
    "text": TextRule,
    "number": NumberRule,
    "email": EmailRule,
    "phone": PhoneRule,
    "date": DateRule,
    "regex": RegexRule,
    "choice": ChoiceRule,
    "media": MediaRule,
    "location": LocationRule,
}


def _rule_tag(value: Any) -> str | None:
    if isinstance(value, _Rule):
        return value.kind
    if isinstance(value, dict) and len(value) == 1:
        key = next(iter(value))
        return key if key in _RULE_CLASSES else None
    return None


def _shorthand(value: Any) -> Any:
    """`"email"` → `{"email": {}}`; `{"number": null}` → `{"number": {}}`."""
    if isinstance(value, str) and value in _RULE_CLASSES and value not in ("regex", "choice"):
        return {value: {}}
    if isinstance(value, dict) and len(value) == 1:
        key, options = next(iter(value.items()))
        if key in _RULE_CLASSES and key not in ("regex", "choice", "media") and options in (None, True):
            return {key: {}}
    return value


_RuleUnion = Annotated[
    Annotated[TextRule, Tag("text")]
    | Annotated[NumberRule, Tag("number")]
    | Annotated[EmailRule, Tag("email")]
    | Annotated[PhoneRule, Tag("phone")]
    | Annotated[DateRule, Tag("date")]
    | Annotated[RegexRule, Tag("regex")]
    | Annotated[ChoiceRule, Tag("choice")]
    | Annotated[MediaRule, Tag("media")]
    | Annotated[LocationRule, Tag("location")],
    Discriminator(
        _rule_tag,
        custom_error_type="invalid_rule",
        custom_error_message=(
            "validate must be one of text, number, email, phone, date, media, location, "
            "or a one-key mapping like {regex: '...'}, {choice: [...]}, {number: {min: 1}}"
        ),
    ),
]

AnswerRule = Annotated[
    _RuleUnion,
    BeforeValidator(
        _shorthand,
        json_schema_input_type=Literal["text", "number", "email", "phone", "date", "media", "location"] | _RuleUnion,
    ),
]
