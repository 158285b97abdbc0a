"""Fault points: kill this process at a named step, to prove what a crash there leaves behind.

`WAFLOW_FAULT_POINT=<point>[:<n>]` in a process's environment makes the n-th (default: first) pass through
`fault_point("<point>")` send SIGKILL to the process itself — no shutdown, no flush, exactly what a crash
or the kernel's OOM killer does. The tests in `tests/outbox/test_fault_points.py` run `waflow serve` with
each point set, restart it without, and judge by the emulator's log that nothing was sent twice or out of
order. Unset (production), a pass costs one comparison.

The points, in the order one message goes through them:

- `outbox.claimed`: rows leased, nothing sent;
- `outbox.sent`: Meta answered 200 with the message id, the outcome not yet recorded;
- `outbox.recorded`: the outcome committed (the status webhooks not yet applied);
- `statuses.applied`: a batch of statuses committed.
"""

from __future__ import annotations

import os
import signal

ENV = "WAFLOW_FAULT_POINT"
POINTS = frozenset({"outbox.claimed", "outbox.sent", "outbox.recorded", "statuses.applied"})


def _armed() -> tuple[str, int] | None:
    spec = os.environ.get(ENV, "").strip()
    if not spec:
        return None
    point, _, count = spec.partition(":")
    if point not in POINTS:
        raise ValueError(f"{ENV}={spec!r}: unknown fault point {point!r}; known: {', '.join(sorted(POINTS))}")
    if count and (not count.isdigit() or int(count) < 1):
        raise ValueError(f"{ENV}={spec!r}: the count after ':' must be a whole number >= 1")
    return point, int(count or 1)


_ARMED = _armed()
_passes = 0


def fault_point(point: str) -> None:
    """SIGKILL this process here if `WAFLOW_FAULT_POINT` names `point` and this is its n-th pass."""
    global _passes
    if _ARMED is None or _ARMED[0] != point:
        return
    _passes += 1
    if _passes >= _ARMED[1]:
        os.kill(os.getpid(), signal.SIGKILL)
