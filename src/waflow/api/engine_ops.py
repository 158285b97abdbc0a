"""The engine's entry points the API calls (one place to follow the engine runtime's names)."""

from __future__ import annotations

from waflow.engine.flows.check import FlowReport, check_flow_text
from waflow.engine.flows.definition import FlowDefinition
from waflow.engine.runtime.api import end_session, start_flow
from waflow.engine.runtime.deploy import FlowCatalog, deploy
from waflow.engine.runtime.errors import (
    ContactOptedOut,
    EngineError,
    FlowStartRefused,
    NotInHandoff,
    SessionNotFound,
    WindowClosed,
)
from waflow.engine.runtime.handoff import agent_reply, hand_back

__all__ = [
    "ContactOptedOut",
    "EngineError",
    "FlowCatalog",
    "FlowDefinition",
    "FlowReport",
    "FlowStartRefused",
    "NotInHandoff",
    "SessionNotFound",
    "WindowClosed",
    "agent_reply",
    "check_flow_text",
    "deploy",
    "end_session",
    "hand_back",
    "start_flow",
]
