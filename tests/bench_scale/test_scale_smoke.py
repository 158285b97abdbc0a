"""`python -m bench.scale --quick` runs end to end (a tiny seeded SQLite store, waflow and pywa, one short round)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


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
    [row] = [line for line in done.stdout.splitlines() if line.strip().startswith("1k ")]
    assert "sqlite" in row and row.split()[-1] != "-", done.stdout
