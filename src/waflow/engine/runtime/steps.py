"""What a node executor answers: go on to a node, wait, end, or pause for an HTTP call."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Goto:
    """Continue at `node` (None: the flow is over — end the session, or return to the calling flow)."""

    node: str | None


@dataclass(frozen=True, slots=True)
class Wait:
    """Stop here until something arrives: `reply` (the user), `timer`, `agent` (handoff)."""

    waiting_for: str


@dataclass(frozen=True, slots=True)
class End:
    """End the session (inside a sub-flow: return to the caller unless `hard`)."""

    reason: str
    hard: bool = False
    error: str | None = None


@dataclass(frozen=True, slots=True)
class CallHttp:
    """Commit the session as running at this node; the worker makes the call, then resumes."""


Step = Goto | Wait | End | CallHttp
