"""Applying one inbox event to the contact's conversation: a user message, or an engine event.

Called by the worker inside the transaction that marks the event done. Answers `DONE`, or
`BLOCKED` when the session is busy with an HTTP call (the event stays queued, in order).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from waflow.canonical import InboundMessage
from waflow.engine.flows.nodes import HandoffNode, WaitNode
from waflow.engine.runtime.commands import AGENT_FLOW, apply_command
from waflow.engine.runtime.deploy import FlowNotFound
from waflow.engine.runtime.executors import http_result
from waflow.engine.runtime.session import Machine
from waflow.engine.runtime.state import SessionState
from waflow.engine.runtime.triggers import Triggers
from waflow.engine.runtime.turn import HttpJob, Turn
from waflow.store.inbox import InboundEventRecord

DONE = "done"
BLOCKED = "blocked"


def _parse_time(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else None


class Dispatcher:
    def __init__(self, machine: Machine) -> None:
        self.machine = machine
        self.config = machine.config
        self.triggers = Triggers()

    async def apply(self, turn: Turn, event: InboundEventRecord) -> str:
        session = await turn.active_session()
        if session is not None and session.state == "running":
            session = await self.recover(turn, session)
            if session is not None and session.state == "running":
                return BLOCKED
        payload = event.payload
        if event.kind == "message":
            turn.message = InboundMessage.model_validate(payload)
            await self.on_message(turn, session, turn.message)
            return DONE
        handler = getattr(self, f"on_{payload.get('engine')}", None)
        if handler is not None and (session is None or session.id == payload.get("session_id") or
                                    payload.get("engine") == "start"):  # fmt: skip
            await handler(turn, session, payload)
        return DONE

    # --- a session stuck in 'running' (an HTTP call in flight, or a crash) ---

    async def recover(self, turn: Turn, session: SessionState) -> SessionState | None:
        """A 'running' session older than `stale_after` retries its HTTP call or ends ('stale')."""
        assert session.updated_at is not None
        if turn.now - session.updated_at < self.config.stale_after:
            return session
        http = session.runtime.get("http")
        if http and session.waiting_for == "http" and int(http.get("attempts", 1)) < self.config.http_max_attempts:
            http["attempts"] = int(http.get("attempts", 1)) + 1
            assert session.id is not None
            c = turn.contact
            turn.http_jobs.append(HttpJob(session.id, c.id, c.phone_number_id, c.contact_key, http["id"],
                                          http["node"], http["request"]))  # fmt: skip
            await turn.save(session)
            return session
        session.last_error = f"stuck running at node {session.current_node!r} for {turn.now - session.updated_at}"
        await self.machine.end(turn, session, "stale")
        await turn.save(session)
        return None

    # --- user messages ---

    async def on_message(self, turn: Turn, session: SessionState | None, msg: InboundMessage) -> None:
        found = self.config.command_for(msg.text) if msg.type in ("text", "button", "interactive") else None
        if found is not None:
            session, route = await apply_command(self.machine, turn, session, found[1], found[0], msg.timestamp)
            if not route:
                return
        if session is not None and session.expires_at is not None and session.expires_at <= turn.now:
            await self._end(turn, session, "expired")
            session = None
        if session is None:
            deployed = self.triggers.match(self.machine.catalog.active, msg)
            if deployed is not None:
                await self.machine.start(turn, deployed)
            return
        if session.state == "handoff" or session.flow_id == AGENT_FLOW:
            return  # a human has the conversation: the message stays in the inbox for the agent
        if session.waiting_for == "timer":
            wake_at = _parse_time(session.runtime.get("wake_at"))
            if wake_at is None or turn.now < wake_at + self.config.stale_after:
                return  # sleeping: the message is kept, not routed
            await self.on_timer(turn, session, {"kind": "wait", "node": session.current_node, "seq": session.seq})
            if session.ended or session.waiting_for != "reply":
                return  # the lost timer's wake-up is done; the message is applied to a reply wait only
        await self.machine.reply(turn, session, msg)

    async def _end(self, turn: Turn, session: SessionState, reason: str) -> None:
        await self.machine.end(turn, session, reason)
        await turn.save(session)

    # --- engine events ---

    async def on_timer(self, turn: Turn, session: SessionState | None, payload: dict[str, Any]) -> None:
        if session is None or payload.get("seq") != session.seq or payload.get("node") != session.current_node:
            return  # the session moved on: a stale timer
        kind = payload.get("kind")
        try:
            _, node = await self.machine.node_ctx(turn, session)
        except (KeyError, FlowNotFound):
            await self._end(turn, session, "error")
            return
        if kind == "wait" and isinstance(node, WaitNode):
            await self.machine.resume(turn, session, node.next)
        elif kind == "handoff_timeout" and isinstance(node, HandoffNode):
            await self.machine.resume(turn, session, node.then, "handoff_timeout")
        elif kind == "reply_timeout" and session.state == "waiting":
            await self.machine.resume(turn, session, getattr(node, "on_timeout", None), "timeout")

    async def on_failed(self, turn: Turn, session: SessionState | None, payload: dict[str, Any]) -> None:
        if session is None or session.state not in ("waiting", "handoff"):
            return
        node_id = payload.get("node_id")
        if node_id != session.current_node and node_id not in session.runtime.get("sent", []):
            return  # the conversation went on since that message
        try:
            defn = await self.machine.definition(turn, session)
        except FlowNotFound:
            return
        node = defn.nodes.get(str(node_id))
        target = getattr(node, "on_failed", None)
        if target is None:
            return
        session.vars["delivery_error"] = {"code": payload.get("error_code"), "text": payload.get("error_text")}
        await self.machine.resume(turn, session, target)

    async def on_start(self, turn: Turn, session: SessionState | None, payload: dict[str, Any]) -> None:
        try:
            deployed = await self.machine.catalog.active_version(turn.conn, str(payload["flow_id"]))
        except FlowNotFound:
            return
        if session is not None:
            await self._end(turn, session, "replaced")
        await self.machine.start(turn, deployed, dict(payload.get("vars") or {}))

    async def on_handback(self, turn: Turn, session: SessionState | None, payload: dict[str, Any]) -> None:
        if session is None or session.state != "handoff":
            return
        target = payload.get("node") or (session.runtime.get("handoff") or {}).get("then")
        if session.flow_id == AGENT_FLOW or target is None:
            await self._end(turn, session, "handed_back")
            return
        await self.machine.resume(turn, session, str(target), "handed_back")

    async def on_expire(self, turn: Turn, session: SessionState | None, payload: dict[str, Any]) -> None:
        if session is None or session.expires_at is None or session.expires_at > turn.now:
            return
        await self._end(turn, session, "expired")

    # --- the answer of an http node's call (a new transaction after the call) ---

    async def on_http_result(self, turn: Turn, job: HttpJob, response: dict[str, Any]) -> bool:
        """Continue the session after its HTTP call; False when it moved on meanwhile (answer dropped)."""
        session = await turn.active_session()
        if (
            session is None
            or session.id != job.session_id
            or session.state != "running"
            or session.waiting_for != "http"
            or (session.runtime.get("http") or {}).get("id") != job.call_id
        ):
            return False
        try:
            c, node = await self.machine.node_ctx(turn, session)
        except (KeyError, FlowNotFound) as exc:
            session.last_error = f"cannot resume after http: {exc}"
            await self._end(turn, session, "error")
            return True
        session.runtime["sent"] = []
        step = await self.machine.guarded(turn, session, http_result(c, node, response))
        await self.machine.drive(turn, session, step)
        return True
