"""`waflow demo` plays its scripted exchange end to end and exits 0."""

from __future__ import annotations

import io

from rich.console import Console

from waflow.demo import run_exchange


async def test_demo_exchange_exits_zero_and_prints_every_type() -> None:
    out = io.StringIO()
    rc = await run_exchange(Console(file=out, width=200))
    text = out.getvalue()
    assert rc == 0, text
    for kind in ("text", "image", "document", "audio", "video", "sticker", "location", "contacts",
                 "cta_url", "location_request", "buttons", "list", "template"):
        assert f"business → {kind}" in text.replace("[bold green]", "")
    assert "user messages stored by the webhook endpoint: 6" in text
