"""`python -m bench.scale --quick` runs end to end: a tiny seeded SQLite store, every part (ingest with pywa,
dispatch, api through `waflow serve`, engine), one short round each, and prints one table per part."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def _table(stdout: str, part: str) -> list[str]:
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"== {part}:"))
    end = next((i for i in range(start + 1, len(lines)) if not lines[i].strip()), len(lines))
    return lines[start:end]


@pytest.mark.slow
def test_scale_bench_quick(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-m", "bench.scale", "--quick"],
        cwd=root,
        env={**os.environ, "WAFLOW_SCALE_CACHE": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    for part in ("ingest", "dispatch", "engine"):
        table = _table(out, part)
        assert "sqlite" in table[1], out
        [row] = [line for line in table if line.strip().startswith("1k ")]
        cells = row.split("|")[1].split()
        assert cells and "-" not in cells, out  # every figure measured
    [ingest] = [line for line in _table(out, "ingest") if line.strip().startswith("1k ")]
    assert ingest.split("|")[-1].strip() != "-", out  # pywa measured beside
    api = _table(out, "api")
    for route in ("handoff", "contact", "session", "messages?contact", "metrics", "contacts?number",
                  "sessions?waiting", "campaign"):  # fmt: skip
        [row] = [line for line in api if line.split("|")[0].strip() == route]
        assert "-" not in row.split("|")[1].split(), out  # answered 200
    assert "answered" not in out, out  # no route answered other than 200
