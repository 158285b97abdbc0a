"""Bulk sends (campaigns) and one-off enqueues: the Python API the CLI and the admin API call.

A campaign is a row in `campaigns` plus one outbound template row per contact (`campaign_id` set, business-
initiated, so the messaging tier applies). Pausing sets the campaign's status, and the dispatcher claims no row
of a campaign that is not running (so pausing and resuming cost one row, whatever the campaign's size); resuming
makes its rows claimable again, as due as they were. The dispatcher marks a campaign `done` once none of its
rows is queued. A recipient who opted out is skipped: the dispatcher refuses their row (the consent rule), which
fails with class `opted_out` and counts as `skipped`, not `failed`. Parameters are strings where `{column}`
takes the contact's CSV column; a missing or empty value is enqueued as is and fails at dispatch with class
`template` and the reason on the row."""

from __future__ import annotations

import re
import string
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from waflow.canonical import OutboundMessage
from waflow.outbox import consent, metrics
from waflow.store import Store, utcnow
from waflow.store.campaigns import CampaignRepository
from waflow.store.outbox import NewOutbound

_NON_DIGITS = re.compile(r"[^\d]")
PHONE_COLUMNS = ("phone", "wa_id", "to", "number", "phone_number")
# Campaign rows go in with one multi-row insert per chunk (`enqueue_many`; ~15 µs a row instead of ~500 µs
# for one INSERT each); the chunk bounds the memory a large CSV takes, not the transaction: still one.
_ENQUEUE_CHUNK = 2000


def normalize_number(raw: str) -> str:
    """`+34 600-111 222` → `34600111222` (the wa_id form)."""
    return _NON_DIGITS.sub("", raw)


def template_content(name: str, language: str, body_params: Sequence[str] = ()) -> dict[str, Any]:
    """A Cloud API `template` object with positional body text parameters."""
    content: dict[str, Any] = {"name": name, "language": {"code": language}}
    if body_params:
        content["components"] = [
            {"type": "body", "parameters": [{"type": "text", "text": p} for p in body_params]}
        ]
    return content


class _Blank(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return ""


def render_params(params: Sequence[str], row: Mapping[str, Any]) -> list[str]:
    """Each parameter with `{column}` replaced by the row's value (missing → empty)."""
    values = _Blank({k.strip(): ("" if v is None else str(v)) for k, v in row.items() if k})
    return [string.Formatter().vformat(p, (), values) for p in params]


def contact_number(row: Mapping[str, Any]) -> str:
    for column in PHONE_COLUMNS:
        value = row.get(column)
        if value:
            return normalize_number(str(value))
    raise ValueError(f"a contact row needs one of the columns {', '.join(PHONE_COLUMNS)}: {dict(row)}")


async def contact_keys(
    store: Store, conn: AsyncConnection, phone_number_id: str, addresses: Sequence[str]
) -> dict[str, str]:
    """The key each address (a wa_id, a user_id or a contact key) is queued under: its contact's, if known."""
    found = await store.contacts.find_many(conn, phone_number_id, addresses) if addresses else {}
    return {a: found[a].contact_key if a in found else a for a in addresses}


class ConsentRefused(Exception):
    """`enqueue_message` refused a message: the consent rule (`waflow.outbox.consent`) says it may not reach
    the contact. Nothing was written."""

    def __init__(self, contact_key: str, reason: str) -> None:
        super().__init__(reason)
        self.contact_key = contact_key
        self.reason = reason


async def enqueue_message(
    store: Store,
    phone_number_id: str,
    message: OutboundMessage,
    *,
    business_initiated: bool,
    fallback_template: dict[str, Any] | None = None,
    conn: AsyncConnection | None = None,
    now: datetime | None = None,
) -> int:
    """Queue one message (in `conn`'s transaction when given); returns the outbox id.

    The row is filed under the key of the contact the address names (a person known by a wa_id and a
    user_id has one queue, whichever the caller names), else under the address itself. A message the
    consent rule refuses at `now` raises `ConsentRefused` and writes nothing (the dispatcher asks the rule
    again before the send: a contact may opt out while the row waits)."""
    address = message.to or message.recipient or ""

    async def go(c: AsyncConnection) -> int:
        contact = (await store.contacts.find_many(c, phone_number_id, [address])).get(address)
        reason = consent.refusal(consent.Consent.of(contact), now or utcnow())
        if reason is not None:
            metrics.MESSAGES.labels(consent.OPTED_OUT).inc()
            raise ConsentRefused(contact.contact_key if contact else address, reason)
        return await store.outbox.enqueue(
            c, phone_number_id, message, contact_key=contact.contact_key if contact else address,
            business_initiated=business_initiated, fallback_template=fallback_template,
        )

    if conn is not None:
        return await go(conn)
    async with store.begin() as c:
        return await go(c)


async def enqueue_campaign(
    store: Store,
    *,
    name: str,
    phone_number_id: str,
    template: str,
    language: str,
    contacts: Iterable[Mapping[str, Any]],
    params: Sequence[str] = (),
    conn: AsyncConnection | None = None,
) -> int:
    """Create a campaign and queue one template message per contact row; returns the campaign id.

    All in one transaction (`conn`'s when given): the campaign appears with all its rows or not at all.
    """

    async def go(c: AsyncConnection) -> int:
        repo = CampaignRepository()
        cid = await repo.create(
            c, name=name, phone_number_id=phone_number_id, template=template, language=language, params=list(params)
        )
        n = 0
        chunk: list[OutboundMessage] = []

        async def flush() -> int:
            keys = await contact_keys(store, c, phone_number_id, [m.to or "" for m in chunk])
            items = [
                NewOutbound(m, contact_key=keys[m.to or ""], business_initiated=True, campaign_id=cid) for m in chunk
            ]
            return len(await store.outbox.enqueue_many(c, phone_number_id, items))

        for row in contacts:
            number = contact_number(row)
            chunk.append(OutboundMessage(
                to=number, type="template", content=template_content(template, language, render_params(params, row))
            ))
            if len(chunk) >= _ENQUEUE_CHUNK:
                n += await flush()
                chunk = []
        n += await flush()
        await repo.add_total(c, cid, n)
        return cid

    if conn is not None:
        return await go(conn)
    async with store.begin() as c:
        return await go(c)


async def pause_campaign(store: Store, campaign_id: int) -> bool:
    async with store.begin() as conn:
        return await CampaignRepository().set_status(conn, campaign_id, "paused", only_from=("running",))


async def resume_campaign(store: Store, campaign_id: int) -> bool:
    async with store.begin() as conn:
        return await CampaignRepository().set_status(conn, campaign_id, "running", only_from=("paused",))


@dataclass(frozen=True, slots=True)
class CampaignProgress:
    id: int
    name: str
    status: str
    total: int
    counts: dict[str, int]
    skipped: int = 0  # refused because the contact opted out (among the `failed` counts)

    def _sum(self, *statuses: str) -> int:
        return sum(self.counts.get(s, 0) for s in statuses)

    @property
    def queued(self) -> int:
        return self._sum("queued")

    @property
    def sent(self) -> int:
        """Accepted by the API (or further)."""
        return self._sum("accepted", "sent", "delivered", "read", "played")

    @property
    def delivered(self) -> int:
        return self._sum("delivered", "read", "played")

    @property
    def read(self) -> int:
        return self._sum("read", "played")

    @property
    def failed(self) -> int:
        """Failed for another reason than an opt-out (those are `skipped`)."""
        return self._sum("failed") - self.skipped

    @property
    def finished(self) -> bool:
        return self.queued == 0


async def campaign_progress(store: Store, campaign_id: int) -> CampaignProgress | None:
    """Counts by delivery status; a running campaign with nothing queued any more is marked `done` here."""
    repo = CampaignRepository()
    async with store.read() as conn:
        campaign = await repo.get(conn, campaign_id)
        if campaign is None:
            return None
        counts = await repo.counts(conn, campaign_id)
        skipped = await repo.opted_out_count(conn, campaign_id) if counts.get("failed") else 0
    status = campaign.status
    if status == "running" and not counts.get("queued"):
        async with store.begin() as conn:
            if await repo.set_status(conn, campaign_id, "done", only_from=("running",)):
                status = "done"
    return CampaignProgress(campaign.id, campaign.name, status, campaign.total, counts, skipped)
