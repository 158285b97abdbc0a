"""A whole local deployment in this event loop: the Cloud API emulator and `waflow serve`, on real sockets.

    async with local_stack(flows_dir="examples") as stack:
        ana = stack.emulator.user("34600111222", name="Ana")
        await ana.send_text("hi")
        await stack.api.post("/api/v1/messages", json={...})     # admin API, key already set
"""

from __future__ import annotations

import contextlib
import secrets
import tempfile
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from waflow.config import Settings, hash_api_key
from waflow.emulator import EmulatorConfig, EmulatorHandle, run_emulator, serve_asgi
from waflow.server import Parts, create_app

APP_SECRET = "demo-app-secret"
VERIFY_TOKEN = "demo-verify-token"


@dataclass
class LocalStack:
    emulator: EmulatorHandle
    url: str  # waflow serve's base URL
    api: httpx.AsyncClient  # the admin API, authenticated
    settings: Settings
    parts: Parts
    api_key: str


def stack_settings(
    emulator: EmulatorHandle, *, db: Path, flows_dir: str | Path | None, api_key: str, extra: Mapping[str, Any]
) -> Settings:
    """Settings for a waflow that talks to `emulator`; the token is read from a file beside the database."""
    cfg = emulator.config
    token_file = db.with_name("access-token")
    token_file.write_text(cfg.access_token)
    token_file.chmod(0o600)
    data: dict[str, Any] = {
        "numbers": [{
            "phone_number_id": cfg.phone_number_id, "waba_id": cfg.waba_id, "display_name": cfg.verified_name,
            "token": f"file:{token_file}", "app_secret": cfg.app_secret, "verify_token": cfg.verify_token,
            "throughput": cfg.throughput_mps,
        }],
        "graph": {"base_url": emulator.base_url},
        "store_url": f"sqlite+aiosqlite:///{db}",
        "flows_dir": str(flows_dir) if flows_dir is not None else None,
        "api": {"keys": [hash_api_key(api_key)]},
        "http": {"allow_hosts": ["127.0.0.1", "localhost"]},
        **extra,
    }
    return Settings(**data)


@contextlib.asynccontextmanager
async def local_stack(
    *,
    flows_dir: str | Path | None = None,
    workdir: str | Path | None = None,
    emulator_config: EmulatorConfig | None = None,
    settings: Mapping[str, Any] | None = None,
) -> AsyncIterator[LocalStack]:
    """Emulator + waflow serve (fresh SQLite file in `workdir` or a temporary folder) until the block ends."""
    api_key = secrets.token_urlsafe(24)
    emu_cfg = emulator_config or EmulatorConfig(app_secret=APP_SECRET, verify_token=VERIFY_TOKEN)
    with tempfile.TemporaryDirectory(prefix="waflow-") as tmp:
        db = Path(workdir or tmp) / "waflow.db"
        async with run_emulator(emu_cfg) as emu:
            cfg = stack_settings(emu, db=db, flows_dir=flows_dir, api_key=api_key, extra=settings or {})
            app = create_app(cfg)
            async with serve_asgi(app) as url:
                emu.set_callback(f"{url}{cfg.server.webhook_path}")
                headers = {"Authorization": f"Bearer {api_key}"}
                async with httpx.AsyncClient(base_url=url, headers=headers, timeout=10) as api:
                    yield LocalStack(emu, url, api, cfg, app.state.parts, api_key)
