"""`waflow token check` and `waflow token exchange` as an operator runs them: a real process against the
emulator on a loopback socket."""

from __future__ import annotations

import asyncio
import os
import stat
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from waflow.emulator import EmulatorConfig, EmulatorHandle, run_emulator
from waflow.server.testing import write_config

CLI = "from waflow.cli import main; main()"
SECRET = "cli-app-secret"
MESSAGING = "whatsapp_business_messaging"
MANAGEMENT = "whatsapp_business_management"
DAY = 86400


@dataclass
class Run:
    code: int
    out: str
    err: str


async def waflow(*args: str, env: dict[str, str] | None = None) -> Run:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("WAFLOW_")}
    environ |= {"COLUMNS": "200", **(env or {})}
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", CLI, *args, env=environ,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return Run(proc.returncode or 0, out.decode(), err.decode())


@pytest.fixture
async def emu() -> AsyncIterator[EmulatorHandle]:
    async with run_emulator(EmulatorConfig(app_secret=SECRET, verify_token="cli-vt")) as handle:
        yield handle


def config(tmp_path: Path, emu: EmulatorHandle, token: str | None = None, **number: object) -> Path:
    path = write_config(tmp_path, emu, port=8080, number={"app_id": emu.config.app_id, **number})
    if token is not None:
        (tmp_path / "access-token").write_text(token)
    return path


def assert_one_line_error(run: Run, *needles: str) -> None:
    assert run.code == 1, (run.out, run.err)
    lines = [line for line in run.err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), run.err
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert "Traceback" not in run.err + run.out


async def test_check_a_system_user_token(tmp_path: Path, emu: EmulatorHandle) -> None:
    run = await waflow("token", "check", "-c", str(config(tmp_path, emu)))
    assert run.code == 0, (run.out, run.err)
    out = run.out
    assert "system user" in out and "never" in out and emu.config.app_name in out and emu.config.app_id in out
    assert f"✓ {MESSAGING}" in out and f"✓ {MANAGEMENT}" in out
    assert f"WABA {emu.config.waba_id} (this number's)" in out and emu.config.phone_number_id in out
    assert emu.config.access_token not in out + run.err and SECRET not in out + run.err


async def test_check_a_user_token_shows_its_expiry(tmp_path: Path, emu: EmulatorHandle) -> None:
    token = emu.issue_token("USER", expires_in=3 * DAY)
    run = await waflow("token", "check", "-c", str(config(tmp_path, emu, token)),
                       "--number", emu.config.phone_number_id)
    assert run.code == 0, (run.out, run.err)
    assert "user" in run.out and "(in 3 days)" in run.out and "UTC" in run.out
    assert token not in run.out + run.err


async def test_check_tells_expired_wrong_and_missing_scope_apart(tmp_path: Path, emu: EmulatorHandle) -> None:
    expired = emu.issue_token("USER", expires_in=60)
    no_messaging = emu.issue_token("SYSTEM_USER", scopes=[MANAGEMENT])
    emu.advance_clock(minutes=2)
    cases = {
        "expired": (expired, ("expired", "190/463")),
        "wrong": ("EAAwrong-token-value", ("not valid", "190")),
        "scope": (no_messaging, (MESSAGING, "permission")),
    }
    errors = {}
    for name, (token, needles) in cases.items():
        folder = tmp_path / name
        folder.mkdir()
        run = await waflow("token", "check", "-c", str(config(folder, emu, token)))
        assert_one_line_error(run, f"numbers[0] ({emu.config.phone_number_id})", *needles)
        assert token not in run.out + run.err
        errors[name] = run.err
    assert "expired" not in errors["wrong"] and "expired" not in errors["scope"]
    assert len(set(errors.values())) == 3
    folder = tmp_path / "scope"
    run = await waflow("token", "check", "-c", str(config(folder, emu, no_messaging)))
    assert f"✗ {MESSAGING} missing" in run.out and f"✓ {MANAGEMENT}" in run.out


async def test_check_without_app_id_or_with_a_wrong_secret(tmp_path: Path, emu: EmulatorHandle) -> None:
    path = write_config(tmp_path, emu, port=8080)  # no app_id
    assert_one_line_error(await waflow("token", "check", "-c", str(path)), "numbers[0].app_id is not set")
    other = tmp_path / "secret"
    other.mkdir()
    path = config(other, emu)
    path.write_text(path.read_text().replace(f'app_secret = "{SECRET}"', 'app_secret = "not-the-secret"'))
    run = await waflow("token", "check", "-c", str(path))
    assert_one_line_error(run, "app id or app secret is wrong", "numbers[0].app_secret")
    assert "not-the-secret" not in run.err
    run = await waflow("token", "check", "-c", str(path), "--number", "42")
    assert run.code == 2 and "--number 42" in run.err and emu.config.phone_number_id in run.err


async def test_exchange_writes_the_token_file(tmp_path: Path, emu: EmulatorHandle) -> None:
    short = emu.issue_token("USER", expires_in=3600)
    token_file = tmp_path / "access-token"
    run = await waflow("token", "exchange", "-c", str(config(tmp_path, emu, short)))
    assert run.code == 0, (run.out, run.err)
    written = token_file.read_text().strip()
    assert written and written != short
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert written not in run.out + run.err and str(token_file) in run.out
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".access-token")] == []  # noqa: ASYNC240  (no temp file left)
    async with httpx.AsyncClient() as c:
        data = (await c.get(f"{emu.graph_url}/debug_token", params={
            "input_token": written, "access_token": f"{emu.config.app_id}|{SECRET}"})).json()["data"]
    assert data["type"] == "USER" and data["is_valid"] is True
    assert abs(data["expires_at"] - (emu.emulator.clock.now() + 60 * DAY)) <= 5
    run = await waflow("token", "check", "-c", str(tmp_path / "waflow.toml"))
    assert run.code == 0 and "(in 60 days)" in run.out


async def test_exchange_for_an_env_token_prints_instructions_not_the_token(
    tmp_path: Path, emu: EmulatorHandle
) -> None:
    short = emu.issue_token("USER", expires_in=3600)
    path = config(tmp_path, emu)
    path.write_text(path.read_text().replace(f'token = "file:{tmp_path / "access-token"}"', 'token = "env:WA_TOKEN"'))
    env = {"WA_TOKEN": short}
    run = await waflow("token", "exchange", "-c", str(path), env=env)
    assert run.code == 0, (run.out, run.err)
    assert "environment variable WA_TOKEN" in run.out and "--print" in run.out
    assert short not in run.out and "EAA" not in run.out
    run = await waflow("token", "exchange", "-c", str(path), "--token", short, "--print", env=env)
    assert run.code == 0, (run.out, run.err)
    printed = run.out.strip().splitlines()[-1]
    assert printed.startswith("EAA") and printed != short
    record = emu.token_record(printed)
    assert record is not None and record.type == "USER"


async def test_exchange_refusals(tmp_path: Path, emu: EmulatorHandle) -> None:
    path = config(tmp_path, emu)  # the emulator's system user token
    run = await waflow("token", "exchange", "-c", str(path))
    assert run.code == 0 and "nothing to exchange" in run.out and "system user" in run.out
    before = (tmp_path / "access-token").read_text()
    expired = emu.issue_token("USER", expires_in=60)
    emu.advance_clock(minutes=2)
    run = await waflow("token", "exchange", "-c", str(path), "--token", expired)
    assert_one_line_error(run, "expired", "190/463")
    run = await waflow("token", "exchange", "-c", str(path), "--token", "EAAwrong")
    assert_one_line_error(run, "not valid")
    assert "expired" not in run.err
    assert (tmp_path / "access-token").read_text() == before  # nothing written
    no_app = tmp_path / "no-app"
    no_app.mkdir()
    run = await waflow("token", "exchange", "-c", str(write_config(no_app, emu, port=8080)))
    assert_one_line_error(run, "numbers[0].app_id is not set")
