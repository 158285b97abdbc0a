"""`waflow demo` plays the demo shop end to end and exits 0; `--exchange` keeps the scripted exchange."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console

from waflow.demo import run_demo, run_exchange
from waflow.demo.shop import flow_text


async def test_demo_exchange_exits_zero_and_prints_every_type() -> None:
    out = io.StringIO()
    rc = await run_exchange(Console(file=out, width=200))
    text = out.getvalue()
    assert rc == 0, text
    for kind in ("text", "image", "document", "audio", "video", "sticker", "location", "contacts",
                 "cta_url", "location_request", "buttons", "list", "template"):
        assert f"business → {kind}" in text.replace("[bold green]", "")
    assert "user messages stored by the webhook endpoint: 6" in text


async def test_demo_shop_exits_zero_with_every_expectation(tmp_path: Path) -> None:
    out = io.StringIO()
    rc = await run_demo(Console(file=out, width=200), workdir=tmp_path)
    text = out.getvalue()
    assert rc == 0, text
    assert "all expectations held" in text
    assert "Please answer with a number from 1 to 10." in text  # the wrong answers were refused
    assert "(via the admin API) Hi Ben! Yes, we have oat milk." in text
    assert text.count("Thanks for visiting Corner Coffee") == 4
    assert "3 orders placed over HTTP" in text


def test_shipped_demo_flow_matches_the_example() -> None:
    example = Path(__file__).resolve().parents[1] / "examples" / "demo_shop.yaml"
    assert example.read_text("utf-8") == flow_text()
