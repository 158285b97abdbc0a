"""Template sends are checked against the stored templates (`templates` table) before they leave.

`TemplateCache` syncs the table from `GET /{waba}/message_templates` through the client and answers
lookups from memory; `check_template` compares a send's parameters with the template's placeholders:
a missing template, one that is not approved, a wrong parameter count and an empty parameter each fail
the message with class `template`, the code Meta would answer, and a text naming the problem.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass
from typing import Any

from waflow.cloudapi.client import CloudAPIClient
from waflow.cloudapi.errors import ErrorClass
from waflow.store import Store
from waflow.store.templates import TemplateRecord, TemplateRepository, TemplateRow

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}")
TEMPLATE_CLASS = ErrorClass.TEMPLATE.value


@dataclass(frozen=True, slots=True)
class TemplateProblem:
    code: int
    text: str
    error_class: str = TEMPLATE_CLASS


def _placeholders(text: Any) -> list[str]:
    if not isinstance(text, str):
        return []
    seen: list[str] = []
    for name in _PLACEHOLDER.findall(text):
        if name not in seen:
            seen.append(name)
    return seen


def expected_parameters(template: TemplateRecord) -> dict[str, list[str]]:
    """Placeholders per component key: `header`, `body`, `button:<index>` (URL buttons)."""
    expected: dict[str, list[str]] = {}
    for comp in template.components:
        ctype = str(comp.get("type", "")).upper()
        if ctype == "HEADER":
            if str(comp.get("format", "TEXT")).upper() == "TEXT":
                names = _placeholders(comp.get("text"))
                if names:
                    expected["header"] = names
            else:
                expected["header"] = ["media"]
        elif ctype == "BODY":
            names = _placeholders(comp.get("text"))
            if names:
                expected["body"] = names
        elif ctype == "BUTTONS":
            for index, button in enumerate(comp.get("buttons") or []):
                if isinstance(button, dict) and str(button.get("type", "")).upper() == "URL":
                    names = _placeholders(button.get("url"))
                    if names:
                        expected[f"button:{index}"] = names
    return expected


def sent_parameters(content: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    sent: dict[str, list[dict[str, Any]]] = {}
    for comp in content.get("components") or []:
        if not isinstance(comp, dict):
            continue
        ctype = str(comp.get("type", "")).lower()
        params = [p for p in comp.get("parameters") or [] if isinstance(p, dict)]
        key = f"button:{comp.get('index', 0)}" if ctype == "button" else ctype
        sent[key] = params
    return sent


def _empty(param: dict[str, Any]) -> bool:
    ptype = param.get("type", "text")
    value = param.get(ptype) if ptype != "text" else param.get("text")
    if ptype == "payload":
        value = param.get("payload")
    if value is None:
        return True
    return isinstance(value, str) and not value.strip()


def check_template(template: TemplateRecord | None, name: str, language: str, content: dict[str, Any]) -> (
    TemplateProblem | None
):
    """None when the send fits the template; otherwise what is wrong (code as Meta would answer)."""
    if template is None:
        return TemplateProblem(132001, f"Template name does not exist in the translation: {name} ({language})")
    if template.status == "PAUSED":
        return TemplateProblem(132015, f"Template is paused: {name} ({language})")
    if template.status == "DISABLED":
        return TemplateProblem(132016, f"Template is disabled: {name} ({language})")
    if template.status != "APPROVED":
        return TemplateProblem(132001, f"Template {name} ({language}) is {template.status}, not APPROVED")
    expected = expected_parameters(template)
    sent = sent_parameters(content)
    for key in sorted(set(expected) | set(sent)):
        want, got = expected.get(key, []), sent.get(key, [])
        if key.startswith("button:") and key not in expected:
            continue  # quick-reply payloads and the like: not placeholders
        if len(got) != len(want):
            return TemplateProblem(
                132000, f"{key}: {len(got)} parameter(s) given, template {name} ({language}) has {len(want)}"
            )
        for i, param in enumerate(got):
            if _empty(param):
                label = param.get("parameter_name") or want[i] if i < len(want) else i + 1
                return TemplateProblem(132008, f"{key}: parameter {{{{{label}}}}} is missing or empty")
        if template.parameter_format == "named" and key in ("header", "body") and want != ["media"]:
            names = sorted(str(p.get("parameter_name")) for p in got)
            if names != sorted(want):
                return TemplateProblem(132000, f"{key}: parameter names {names} do not match the template's {want}")
    return None


def template_key(content: dict[str, Any]) -> tuple[str, str]:
    name = str(content.get("name", ""))
    language = content.get("language")
    code = language.get("code") if isinstance(language, dict) else language
    return name, str(code or "")


class TemplateCache:
    """The `templates` table of one WABA, in memory; re-synced on a miss at most every `resync_s`."""

    def __init__(self, store: Store, client: CloudAPIClient, waba_id: str, *, resync_s: float = 30.0) -> None:
        self.store = store
        self.client = client
        self.waba_id = waba_id
        self.resync_s = resync_s
        self._repo = TemplateRepository()
        self._by_key: dict[tuple[str, str], TemplateRecord] | None = None
        self._synced_at = -1e18
        self._lock = asyncio.Lock()

    async def sync(self) -> int:
        """Fetch every template of the WABA and replace the table's rows with them."""
        rows = [
            TemplateRow(
                name=t.name or "", language=t.language or "", status=t.status or "", components=t.components,
                template_id=t.id, category=t.category, parameter_format=t.parameter_format,
            )
            async for t in self.client.templates.iter_all()
        ]
        async with self.store.begin() as conn:
            n = await self._repo.replace_all(conn, self.waba_id, rows)
        self._synced_at = time.monotonic()
        await self._load()
        return n

    async def _load(self) -> None:
        async with self.store.read() as conn:
            records = await self._repo.all(conn, self.waba_id)
        self._by_key = {(r.name, r.language): r for r in records}

    async def lookup(self, name: str, language: str) -> TemplateRecord | None:
        async with self._lock:
            if self._by_key is None:
                await self._load()
            assert self._by_key is not None
            found = self._by_key.get((name, language))
            if found is None and time.monotonic() - self._synced_at >= self.resync_s:
                await self.sync()
                found = self._by_key.get((name, language))
            return found

    async def check(self, content: dict[str, Any]) -> TemplateProblem | None:
        name, language = template_key(content)
        found = await self.lookup(name, language)
        if found is not None and found.status != "APPROVED":
            # before refusing, the table as it is now: a status webhook (applied by whichever process took it)
            # may have approved the template since this process loaded it (one index lookup, refusals only)
            async with self.store.read() as conn:
                fresh = await self._repo.get(conn, self.waba_id, name, language)
            if fresh is not None and self._by_key is not None:
                self._by_key[(name, language)] = fresh
            found = fresh or found
        return check_template(found, name, language, content)
