"""`waflow send text|bulk|campaign` as a user runs them, against the emulator (subprocess, real socket)."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

from waflow.store import Store
from waflow.store.testing import sqlite_url

PNID = "106540352242922"
WABA = "102290129340398"
CLI = "from waflow.cli import send_cmd; from waflow.cli.app import app; app()"


async def waflow(env: Any, db: str, *args: str) -> tuple[int, str]:
    environ = {**os.environ, "WHATSAPP_PHONE_NUMBER_ID": PNID, "WHATSAPP_WABA_ID": WABA,
               "WHATSAPP_ACCESS_TOKEN": env.tokens[-1], "WHATSAPP_BASE_URL": env.emu.base_url, "COLUMNS": "120"}
    environ.pop("WAFLOW_REDIS_URL", None)
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", CLI, *args, "--db", db, env=environ,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode()


async def test_send_text_and_bulk_campaign(sqlite_store: Store, outbox_environment_factory: Any,
                                           tmp_path: Path) -> None:
    db = sqlite_url(tmp_path)
    async with outbox_environment_factory(sqlite_store) as env:
        await env.open_windows("34690000001")
        code, out = await waflow(env, db, "send", "text", "+34 690 000 001", "hola")
        assert code == 0 and any(f"{s}: wamid." in out for s in ("accepted", "sent", "delivered", "read")), out
        code, out = await waflow(env, db, "send", "text", "34690000002", "stranger")
        assert code == 1 and "outside_window 131047" in out, out

        csv_path = tmp_path / "contacts.csv"
        csv_path.write_text("phone,name,order\n34691000001,Ana,A1\n34691000002,Bo,B2\n34691000003,,C3\n")
        code, out = await waflow(env, db, "send", "bulk", str(csv_path), "--template", "order_update",
                                 "--lang", "en_US", "--param", "{name}", "--param", "{order}")
        assert code == 0 and "sent 2" in out and "failed 1" in out, out
        code, out = await waflow(env, db, "send", "campaign", "status", "1")
        assert code == 0 and "done" in out, out
        code, out = await waflow(env, db, "send", "campaign", "pause", "1")
        assert code == 1 and "cannot be paused" in out, out


async def test_send_text_to_an_opted_out_contact_says_opted_out(sqlite_store: Store, outbox_environment_factory: Any,
                                                                tmp_path: Path) -> None:
    from waflow.canonical import ContactRef

    db = sqlite_url(tmp_path)
    store = Store.open(db)
    try:
        await store.upgrade()
        async with store.begin() as conn:
            contact = await store.contacts.upsert_from_inbound(conn, PNID, ContactRef(wa_id="34692000001"), None)
            await store.consent.set(conn, contact, opted_out=True, source="api", actor="test")
    finally:
        await store.close()
    async with outbox_environment_factory(sqlite_store) as env:
        code, out = await waflow(env, db, "send", "text", "34692000001", "promo")
    assert code == 1 and out.startswith("opted_out: not queued: the contact opted out"), out
    assert env.emu.user("34692000001").received() == []
