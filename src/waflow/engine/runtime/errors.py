"""Errors the engine's functions raise to their callers (the admin API turns them into answers)."""

from __future__ import annotations


class EngineError(Exception):
    """Base of the engine's refusals."""


class FlowStartRefused(EngineError):
    """`start_flow` cannot start this flow for this contact now; `reason`: not_deployed, opted_out, window_closed."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class SessionNotFound(EngineError):
    """No such session, or it has ended."""


class NotInHandoff(EngineError):
    """The session is not with a human."""


class ContactOptedOut(EngineError):
    """The consent rule refuses a message to this contact (`waflow.outbox.consent`)."""


class WindowClosed(EngineError):
    """The 24 h customer-service window is closed: only a template may be sent."""
