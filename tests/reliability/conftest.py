"""The short versions of `make reliability` (`python -m bench.reliability --quick`): the scenarios live in
`bench/reliability/`, which these tests import from the repository root."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

for name in ("uvicorn.error", "asyncio", "waflow.emulator"):
    logging.getLogger(name).setLevel(logging.CRITICAL)
