"""waflow.engine.runtime: runs deployed flows — one state machine per contact session.

    async with store.begin() as conn:
        version = await deploy_flow(conn, load_flow_file("flows/welcome.yaml"))
    async with EngineWorker(store, EngineConfig()), TimerScheduler(store):
        ...   # inbound messages in the inbox become replies in the outbox

Modules: `worker` (claims events, per-contact order, transactions), `dispatch` (one event → the session),
`session` (the state machine), `executors/` (one function per node type), `triggers`, `commands`,
`timers` (scheduler), `handoff`, `api` (`start_flow`, `end_session`), `http_guard`, `deploy`, `registry`.
"""

from waflow.engine.runtime.api import FlowStart, end_session, start_flow
from waflow.engine.runtime.config import Command, CommandAction, EngineConfig
from waflow.engine.runtime.deploy import Deployed, FlowCatalog, FlowNotFound, deploy_flow
from waflow.engine.runtime.errors import (
    ContactOptedOut,
    EngineError,
    FlowStartRefused,
    NotInHandoff,
    SessionNotFound,
    WindowClosed,
)
from waflow.engine.runtime.handoff import agent_reply, hand_back
from waflow.engine.runtime.registry import DeployResult, FlowRegistry
from waflow.engine.runtime.timers import TimerScheduler
from waflow.engine.runtime.worker import EngineWorker

__all__ = [
    "Command",
    "CommandAction",
    "ContactOptedOut",
    "DeployResult",
    "Deployed",
    "EngineConfig",
    "EngineError",
    "EngineWorker",
    "FlowCatalog",
    "FlowNotFound",
    "FlowRegistry",
    "FlowStart",
    "FlowStartRefused",
    "NotInHandoff",
    "SessionNotFound",
    "TimerScheduler",
    "WindowClosed",
    "agent_reply",
    "deploy_flow",
    "end_session",
    "hand_back",
    "start_flow",
]
