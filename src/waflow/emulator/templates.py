"""Template registry per WABA: creation, lookup, status transitions, and send-time checks."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from .graph_errors import GraphError, invalid, missing, param
from .ids import numeric_id

STATUSES = frozenset(
    {"APPROVED", "PENDING", "REJECTED", "PAUSED", "DISABLED", "IN_APPEAL", "PENDING_DELETION", "DELETED",
     "LIMIT_EXCEEDED", "ARCHIVED"}
)
CATEGORIES = frozenset({"MARKETING", "UTILITY", "AUTHENTICATION"})
_NAME = re.compile(r"^[a-z0-9_]{1,512}$")
_VAR = re.compile(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}")
OPTIONAL = "?optional"  # a button whose one parameter (payload / flow action) may be left out
_MEDIA_FORMATS = frozenset({"IMAGE", "VIDEO", "DOCUMENT", "LOCATION"})


@dataclass(slots=True)
class Template:
    id: str
    waba_id: str
    name: str
    language: str
    category: str
    status: str
    parameter_format: str  # "positional" | "named"
    components: list[dict[str, Any]] = field(default_factory=list)
    reason: str | None = None

    def as_json(self, fields: set[str] | None = None) -> dict[str, Any]:
        full: dict[str, Any] = {
            "name": self.name,
            "parameter_format": self.parameter_format.upper(),
            "components": self.components,
            "language": self.language,
            "status": self.status,
            "category": self.category,
            "id": self.id,
        }
        if fields:
            return {k: v for k, v in full.items() if k in fields or k == "id"}
        return full

    def expected_params(self) -> dict[str, list[str]]:
        """Variables each component needs, keyed like the send side: header / body / button:<i>."""
        out: dict[str, list[str]] = {}
        for comp in self.components:
            ctype = str(comp.get("type", "")).upper()
            if ctype == "HEADER":
                fmt = str(comp.get("format", "TEXT")).upper()
                out["header"] = ["media"] if fmt in _MEDIA_FORMATS else _VAR.findall(str(comp.get("text", "")))
            elif ctype == "BODY":
                out["body"] = _VAR.findall(str(comp.get("text", "")))
            elif ctype == "BUTTONS":
                for i, b in enumerate(comp.get("buttons", [])):
                    btype = str(b.get("type", "")).upper()
                    if btype == "URL":
                        out[f"button:{i}"] = _VAR.findall(str(b.get("url", "")))
                    elif btype == "COPY_CODE":
                        out[f"button:{i}"] = ["coupon_code"]
                    elif btype in ("QUICK_REPLY", "FLOW"):
                        out[f"button:{i}"] = [OPTIONAL]
        return out


class TemplateRegistry:
    def __init__(self) -> None:
        self._by_id: dict[str, Template] = {}

    def all(self, waba_id: str) -> list[Template]:
        return [t for t in self._by_id.values() if t.waba_id == waba_id and t.status != "DELETED"]

    def get(self, template_id: str) -> Template | None:
        t = self._by_id.get(template_id)
        return t if t is not None and t.status != "DELETED" else None

    def find(self, waba_id: str, name: str, language: str) -> Template | None:
        for t in self.all(waba_id):
            if t.name == name and t.language == language:
                return t
        return None

    def create(self, waba_id: str, body: Any, *, status: str = "APPROVED") -> Template:
        if not isinstance(body, dict):
            raise param("The request body must be a JSON object.")
        name = body.get("name")
        if not isinstance(name, str) or not _NAME.match(name):
            raise param("Param name must be lowercase letters, digits and underscores (max 512).")
        language = body.get("language")
        if not isinstance(language, str) or not language:
            raise missing("Parameter 'language' is required.")
        category = str(body.get("category", "")).upper()
        if category not in CATEGORIES:
            raise param("Param category must be one of {MARKETING, UTILITY, AUTHENTICATION}.")
        fmt = str(body.get("parameter_format", "positional")).lower()
        if fmt not in ("positional", "named"):
            raise param("Param parameter_format must be one of {POSITIONAL, NAMED}.")
        comps = body.get("components", [])
        if not isinstance(comps, list) or not all(isinstance(c, dict) for c in comps):
            raise param("Param components must be an array of objects.")
        _check_components(comps)
        if self.find(waba_id, name, language) is not None:
            raise GraphError(
                100, f"Content in this language already exists for template name {name}.",
                message="(#100) Invalid parameter", subcode=2388024,
            )
        status = str(body.get("status", status)).upper()
        if status not in STATUSES:
            raise param(f"Unknown template status {status[:30]}.")
        t = Template(numeric_id(), waba_id, name, language, category, status, fmt, comps)
        self._by_id[t.id] = t
        return t

    def update(self, template_id: str, body: Any) -> Template:
        t = self.get(template_id)
        if t is None:
            raise GraphError(100, None, message=f"(#100) Invalid template id {template_id}", subcode=33)
        if not isinstance(body, dict):
            raise param("The request body must be a JSON object.")
        if t.status not in ("APPROVED", "REJECTED", "PAUSED"):
            raise invalid(f"Template in status {t.status} cannot be edited.")
        if "category" in body:
            category = str(body["category"]).upper()
            if category not in CATEGORIES:
                raise param("Param category must be one of {MARKETING, UTILITY, AUTHENTICATION}.")
            if t.status == "APPROVED" and category != t.category:
                raise invalid("The category of an approved template cannot be changed.")
            t.category = category
        if "components" in body:
            comps = body["components"]
            if not isinstance(comps, list) or not all(isinstance(c, dict) for c in comps):
                raise param("Param components must be an array of objects.")
            _check_components(comps)
            t.components = comps
        return t

    def delete(self, waba_id: str, name: str, hsm_id: str | None) -> list[Template]:
        victims = [t for t in self.all(waba_id) if t.name == name and (hsm_id is None or t.id == hsm_id)]
        if not victims:
            raise GraphError(100, f"Template {name} not found.", message="(#100) Invalid parameter")
        for t in victims:
            if t.status == "DISABLED":
                raise invalid("A disabled template cannot be deleted.")
        for t in victims:
            t.status = "DELETED"
        return victims

    def set_status(self, template_id: str, status: str, reason: str | None = None) -> Template:
        t = self.get(template_id)
        if t is None:
            raise KeyError(template_id)
        status = status.upper()
        if status not in STATUSES:
            raise ValueError(f"unknown template status {status}")
        t.status = status
        t.reason = reason
        return t

    def check_send(self, waba_id: str, name: str, language: str, sent: dict[str, list[dict[str, Any]]]) -> Template:
        """Meta's send-time template checks: existence/approval, then format, then counts."""
        t = self.find(waba_id, name, language)
        if t is None or t.status in ("PENDING", "REJECTED", "IN_APPEAL", "PENDING_DELETION", "ARCHIVED",
                                     "LIMIT_EXCEEDED"):
            raise GraphError(132001, f"template name ({name}) does not exist in {language}")
        if t.status == "PAUSED":
            raise GraphError(132015, f"Template {name} is paused due to low quality.")
        if t.status == "DISABLED":
            raise GraphError(132016, f"Template {name} has been disabled.")
        expected = t.expected_params()
        for key in sorted(set(expected) | set(sent)):
            want = expected.get(key, [])
            got = sent.get(key, [])
            if not got and (not want or want == [OPTIONAL]):
                continue
            if want == [OPTIONAL]:
                want = ["payload"]
            named = [p for p in got if "parameter_name" in p]
            is_media = want == ["media"] or want == ["coupon_code"]
            if key in ("header", "body") and not is_media and got:
                if t.parameter_format == "named" and len(named) != len(got):
                    raise GraphError(132012, f"{key}: parameter format does not match: expected named parameters")
                if t.parameter_format == "positional" and named:
                    raise GraphError(132012, f"{key}: parameter format does not match: expected positional")
            if len(got) != len(want):
                raise GraphError(
                    132000,
                    f"{key.split(':')[0]}: number of localizable_params ({len(got)}) does not match the "
                    f"expected number of params ({len(want)})",
                )
            if (
                t.parameter_format == "named"
                and key in ("header", "body")
                and not is_media
                and sorted(p["parameter_name"] for p in named) != sorted(want)
            ):
                raise GraphError(132000, f"{key}: parameter names do not match the template's parameters")
        return t


def _check_components(comps: list[dict[str, Any]]) -> None:
    for comp in comps:
        ctype = str(comp.get("type", "")).upper()
        text = comp.get("text")
        if ctype == "HEADER" and str(comp.get("format", "TEXT")).upper() == "TEXT":
            if not isinstance(text, str) or not 1 <= len(text) <= 60:
                raise GraphError(100, "Header text length invalid. Max length: 60", subcode=2388040)
        elif ctype == "BODY":
            if not isinstance(text, str) or not 1 <= len(text) <= 1024:
                raise GraphError(100, "Body text length invalid. Max length: 1024", subcode=2388040)
        elif ctype == "FOOTER":
            if not isinstance(text, str) or not 1 <= len(text) <= 60:
                raise GraphError(100, "Footer text length invalid. Max length: 60", subcode=2388040)
        elif ctype == "BUTTONS":
            buttons = comp.get("buttons")
            if not isinstance(buttons, list) or not 1 <= len(buttons) <= 10:
                raise GraphError(100, "Invalid number of buttons. Min: 1, Max: 10")
            for b in buttons:
                if not isinstance(b, dict) or not 1 <= len(str(b.get("text", ""))) <= 25:
                    raise GraphError(100, "Button text length invalid. Max length: 25", subcode=2388040)
        elif ctype not in ("HEADER",):
            raise GraphError(100, f"Invalid component type {ctype[:20]}.")
