from __future__ import annotations

from pathlib import Path

import pytest

from .helpers import EXAMPLE_FILES


@pytest.fixture(params=EXAMPLE_FILES, ids=lambda p: p.name)
def example_file(request: pytest.FixtureRequest) -> Path:
    return request.param  # type: ignore[no-any-return]
