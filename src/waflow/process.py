"""Process-wide settings of a long-running waflow process."""

from __future__ import annotations

import gc


def settle_heap() -> None:
    """Move everything allocated at start-up (modules, SQLAlchemy and pydantic machinery, the app)
    out of the garbage collector's view.

    Python's full (generation 2) collection walks every tracked object; in `waflow serve` and the
    webhook endpoint that is ~100,000 start-up objects that never die, and each full collection
    stalled the event loop for 40-60 ms — the whole p99 of the webhook answers under load
    (measured with gc callbacks during `bench/webhooks_ingest.py`). Frozen, a full collection
    only walks what was allocated since, and took about 1 ms.
    """
    gc.collect()
    gc.freeze()
