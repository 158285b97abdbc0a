"""The design's promises on the whole system, short versions (`python -m bench.reliability --quick` sizes):
real `waflow serve` / `waflow worker` processes, the emulator in this process. Each asserts that every promise
its scenario checks held; the failure message is the scenario's own report (what was tried, the figures)."""

from __future__ import annotations

from pathlib import Path

import pytest
from bench.reliability.__main__ import QUICK
from bench.reliability.consent import consent
from bench.reliability.crash import crash
from bench.reliability.faults import faults
from bench.reliability.hostile import hostile
from bench.reliability.report import Result
from bench.reliability.security import security
from bench.reliability.storm import storm

pytestmark = pytest.mark.slow
Q = QUICK


def held(result: Result) -> None:
    print(result.summary())
    if result.skipped is not None:
        pytest.skip(result.skipped)
    assert result.ok, result.summary()


async def test_crash_sqlite_sigkill_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    held(await crash(tmp_path, conversations=Q.conversations, kills=Q.kills, over_s=Q.crash_s))


@pytest.mark.postgres
async def test_crash_postgres_serve_and_worker(tmp_path: Path) -> None:
    # skips when PostgreSQL is unreachable; with WAFLOW_REQUIRE_SERVICES=1 `crash` raises instead
    held(await crash(tmp_path, conversations=Q.pg_conversations, kills=Q.pg_kills, over_s=Q.crash_s, postgres=True))


async def test_faults_and_token_rotation(tmp_path: Path) -> None:
    held(await faults(tmp_path, conversations=Q.fault_conversations, over_s=Q.fault_s))


async def test_webhook_storm(tmp_path: Path) -> None:
    held(await storm(tmp_path, seconds=Q.storm_s, rate=Q.storm_rate, conversations=Q.storm_conversations))


async def test_bad_input(tmp_path: Path) -> None:
    held(await hostile(tmp_path, examples=Q.fuzz_examples, schema_examples=Q.schema_examples))


async def test_security(tmp_path: Path) -> None:
    held(await security(tmp_path))


async def test_opt_out_on_every_send_path(tmp_path: Path) -> None:
    held(await consent(tmp_path, users=Q.consent_users))
