"""No inbox kind stays pending forever: account updates, webhook-level errors and template status updates are
done when stored (template statuses applied to the templates table in the same transaction)."""

from __future__ import annotations

import httpx

from waflow.store import Store

from .helpers import PNID, WABA, inbox_rows, post, serve

META = {"display_phone_number": "15550783881", "phone_number_id": PNID}


def envelope(value: dict[str, object], field: str) -> dict[str, object]:
    return {"object": "whatsapp_business_account", "entry": [{"id": WABA, "time": 1760000200,
                                                               "changes": [{"field": field, "value": value}]}]}


async def test_kinds_nothing_consumes_are_done_when_stored(store: Store) -> None:
    bodies = [
        envelope({"event": "ACCOUNT_VIOLATION", "violation_info": {"violation_type": "SCAM"}}, "account_update"),
        envelope({"messaging_product": "whatsapp", "metadata": META, "errors": [
            {"code": 130429, "title": "Rate limit hit", "message": "Rate limit hit"}]}, "messages"),
        envelope({"event": "PAUSED", "message_template_id": 1234567890, "message_template_name": "order_update",
                  "message_template_language": "en_US", "reason": "NONE"}, "message_template_status_update"),
    ]
    async with serve(store) as url, httpx.AsyncClient() as c:
        for body in bodies:
            assert (await post(c, url, body)).status_code == 200
    rows = await inbox_rows(store)
    assert sorted(r["kind"] for r in rows) == ["error", "other", "template_status"]
    assert {r["state"] for r in rows} == {"done"}, rows
