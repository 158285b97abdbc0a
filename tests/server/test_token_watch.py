"""`waflow serve` watches each number's access token: at start and daily, warnings 7 days and 24 h before
expiry, `waflow_access_token_expires_at_seconds`, `/readyz` 503 once it expired; a Graph outage does not stop it.

In-process runs use a `ManualClock` (the emulator's clock moved with it) so that days pass without sleeping;
the last tests run `waflow serve` as a real process."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from waflow.config import Settings, load_settings
from waflow.emulator import EmulatorConfig, EmulatorHandle, run_emulator, serve_asgi
from waflow.server import build_parts, create_app
from waflow.server.testing import ManualClock, ServeProcess, free_port, write_config
from waflow.server.token_watch import TokenWatch

DAY = 86400
EXPIRES = "waflow_access_token_expires_at_seconds"
VALID = "waflow_access_token_valid"


@pytest.fixture
async def emu() -> AsyncIterator[EmulatorHandle]:
    async with run_emulator(EmulatorConfig(app_secret="watch-app-secret", verify_token="watch-vt")) as handle:
        yield handle


def settings_for(tmp_path: Path, emu: EmulatorHandle, token: str, *, app_id: bool = True) -> Settings:
    number = {"app_id": emu.config.app_id} if app_id else {}
    path = write_config(tmp_path, emu, port=free_port(), number=number)
    (tmp_path / "access-token").write_text(token)
    return load_settings(path)


def metric(text: str, name: str, phone_number_id: str) -> float | None:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels.get("phone_number_id") == phone_number_id:
                return float(sample.value)
    return None


def messages(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "waflow.server.token" and r.levelno == level]


async def test_a_user_token_is_warned_about_then_fails_readiness(
    tmp_path: Path, emu: EmulatorHandle, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="waflow.server.token")
    pnid = emu.config.phone_number_id
    token = emu.issue_token("USER", expires_in=8 * DAY)
    record = emu.token_record(token)
    assert record is not None
    expires_at = int(record.expires_at)
    settings = settings_for(tmp_path, emu, token)
    clock = ManualClock(start=emu.emulator.clock.now())

    def skip(**step: float) -> None:
        clock.advance(**step)
        emu.advance_clock(**step)

    parts = build_parts(settings, "serve", token_clock=clock)
    watch = parts.token_watch
    assert isinstance(watch, TokenWatch)
    async with serve_asgi(create_app(settings, parts=parts)) as url, httpx.AsyncClient(base_url=url) as http:
        await watch.wait_rounds(1)  # at start
        assert metric((await http.get("/metrics")).text, EXPIRES, pnid) == expires_at
        assert metric((await http.get("/metrics")).text, VALID, pnid) == 1
        assert (await http.get("/readyz")).status_code == 200
        assert messages(caplog, logging.WARNING) == []

        skip(days=1)  # 7 days left
        await watch.wait_rounds(2)
        warned = messages(caplog, logging.WARNING)
        assert len(warned) == 1 and "expires in 7 days" in warned[0] and f"({pnid})" in warned[0]

        skip(days=6)  # 24 h left
        await watch.wait_rounds(3)
        warned = messages(caplog, logging.WARNING)
        assert len(warned) == 2 and "expires in 24 h" in warned[1]
        assert (await http.get("/readyz")).status_code == 200

        skip(days=1)  # expired
        await watch.wait_rounds(4)
        r = await http.get("/readyz")
        assert r.status_code == 503
        reason = r.json()["checks"]["access_token"]
        assert f"numbers[0] ({pnid})" in reason and "expired" in reason
        assert metric((await http.get("/metrics")).text, VALID, pnid) == 0
        assert any("expired" in m for m in messages(caplog, logging.ERROR))
        assert token not in caplog.text

        # a new token where the reference points clears it at the next round (sooner than a day)
        new = emu.issue_token("SYSTEM_USER")
        (tmp_path / "access-token").write_text(new)
        skip(seconds=watch.retry_s)
        await watch.wait_rounds(5)
        assert (await http.get("/readyz")).status_code == 200
        assert metric((await http.get("/metrics")).text, EXPIRES, pnid) == 0  # never
        assert new not in caplog.text


async def test_a_system_user_token_is_checked_daily(tmp_path: Path, emu: EmulatorHandle) -> None:
    settings = settings_for(tmp_path, emu, emu.config.access_token)
    clock = ManualClock(start=emu.emulator.clock.now())
    parts = build_parts(settings, "serve", token_clock=clock)
    watch = parts.token_watch
    assert watch is not None
    async with serve_asgi(create_app(settings, parts=parts)) as url, httpx.AsyncClient(base_url=url) as http:
        await watch.wait_rounds(1)
        assert metric((await http.get("/metrics")).text, EXPIRES, emu.config.phone_number_id) == 0
        emu.revoke_token(emu.config.access_token)  # seen at the next daily round, not before
        clock.advance(hours=23)
        assert (await http.get("/readyz")).status_code == 200 and watch.rounds == 1
        clock.advance(hours=1)
        await watch.wait_rounds(2)
        r = await http.get("/readyz")
        assert r.status_code == 503 and "not valid" in r.json()["checks"]["access_token"]
        assert "expired" not in r.json()["checks"]["access_token"]


async def test_a_number_without_app_id_is_not_checked(
    tmp_path: Path, emu: EmulatorHandle, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="waflow.server.token")
    settings = settings_for(tmp_path, emu, emu.config.access_token, app_id=False)
    parts = build_parts(settings, "serve", token_clock=ManualClock())
    assert parts.token_watch is not None and parts.token_watch.states == {}
    async with serve_asgi(create_app(settings, parts=parts)) as url, httpx.AsyncClient(base_url=url) as http:
        assert (await http.get("/readyz")).status_code == 200
    warned = messages(caplog, logging.WARNING)
    assert len(warned) == 1 and "numbers[0].app_id" in warned[0] and "cannot be checked" in warned[0]


async def test_graph_unreachable_is_logged_and_tried_again(
    tmp_path: Path, emu: EmulatorHandle, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="waflow.server.token")
    settings = settings_for(tmp_path, emu, emu.config.access_token)
    clock = ManualClock(start=emu.emulator.clock.now())
    parts = build_parts(settings, "serve", token_clock=clock)
    watch = parts.token_watch
    assert watch is not None
    emu.faults.set(drop_rate=1.0, only_messages=False)  # every Graph call is dropped
    async with serve_asgi(create_app(settings, parts=parts)) as url, httpx.AsyncClient(base_url=url) as http:
        await watch.wait_rounds(1)
        assert any("could not check the access token" in m for m in messages(caplog, logging.WARNING))
        assert (await http.get("/healthz")).status_code == 200
        assert (await http.get("/readyz")).status_code == 200  # unknown is not expired
        emu.faults.clear()
        clock.advance(seconds=watch.retry_s)
        await watch.wait_rounds(2)
        assert metric((await http.get("/metrics")).text, EXPIRES, emu.config.phone_number_id) == 0
    assert "watch-app-secret" not in caplog.text


# -- `waflow serve` as a process -----------------------------------------------------------------


async def _until(predicate: Callable[[], Awaitable[bool]], timeout: float = 30.0) -> None:  # noqa: ASYNC109
    """Poll an async predicate (a real process's answers) until it holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await predicate():
            return
        await asyncio.sleep(0.1)
    raise TimeoutError("condition not reached")


@pytest.mark.slow
async def test_serve_process_reports_expiry_at_start(tmp_path: Path, emu: EmulatorHandle) -> None:
    pnid = emu.config.phone_number_id
    token = emu.issue_token("USER", expires_in=3 * DAY)
    port = free_port()
    config = write_config(tmp_path, emu, port=port, number={"app_id": emu.config.app_id})
    (tmp_path / "access-token").write_text(token)
    serve = ServeProcess(config, port)
    await serve.start()
    try:
        async with httpx.AsyncClient(base_url=serve.url, timeout=5) as http:
            async def exported() -> bool:
                return metric((await http.get("/metrics")).text, EXPIRES, pnid) is not None

            await _until(exported)
            record = emu.token_record(token)
            assert record is not None
            assert metric((await http.get("/metrics")).text, EXPIRES, pnid) == int(record.expires_at)
            assert (await http.get("/readyz")).status_code == 200
    finally:
        assert await serve.stop() == 0, serve.log.read_text()[-4000:]
    log = serve.log.read_text()
    assert "expires in 3 days" in log and token not in log and "watch-app-secret" not in log


@pytest.mark.slow
async def test_serve_process_with_an_expired_token_is_not_ready(tmp_path: Path, emu: EmulatorHandle) -> None:
    pnid = emu.config.phone_number_id
    token = emu.issue_token("USER", expires_in=60)
    emu.advance_clock(minutes=2)
    port = free_port()
    config = write_config(tmp_path, emu, port=port, number={"app_id": emu.config.app_id})
    (tmp_path / "access-token").write_text(token)
    serve = ServeProcess(config, port)
    serve.launch()
    try:
        async with httpx.AsyncClient(base_url=serve.url, timeout=5) as http:
            answer: dict[str, object] = {}

            async def not_ready() -> bool:
                try:
                    r = await http.get("/readyz")
                except httpx.HTTPError:
                    return False
                answer.update(r.json())
                return r.status_code == 503

            await _until(not_ready)
            checks = answer["checks"]
            assert isinstance(checks, dict)
            assert checks["database"] == "ok"
            assert f"numbers[0] ({pnid})" in checks["access_token"] and "expired" in checks["access_token"]
            assert (await http.get("/healthz")).status_code == 200
    finally:
        assert await serve.stop() == 0, serve.log.read_text()[-4000:]
    assert token not in serve.log.read_text()
