"""Global commands (`stop`, `start`, `agent`, `restart`, ...): checked before flow routing, in every state."""

from __future__ import annotations

from datetime import datetime

from waflow.engine.runtime.config import Command, CommandAction
from waflow.engine.runtime.session import Machine
from waflow.engine.runtime.state import SessionState
from waflow.engine.runtime.turn import Turn
from waflow.outbox.consent import OPT_OUT_NOTICE
from waflow.store.consent import ConsentRepository
from waflow.store.types import utcnow

consent = ConsentRepository()
AGENT_FLOW = "_agent"  # the pseudo-flow of a handoff asked for outside any flow


async def apply_command(
    machine: Machine, turn: Turn, session: SessionState | None, command: Command,
    word: str | None = None, written_at: datetime | None = None,
) -> tuple[SessionState | None, bool]:
    """Carry out `command` (`word`: what the contact wrote, at `written_at`); returns (the active session
    afterwards, whether to route the message as new).

    An opt-out is recorded at the stop word's own time (the provider's timestamp, the clock `last_inbound_at`
    is on): a message the contact writes later counts as a conversation they started (the consent rule)."""
    route = False
    match command.action:
        case CommandAction.OPT_OUT:
            turn.contact_changed = True
            await consent.set(turn.conn, turn.contact, opted_out=True, source="keyword", actor="contact",
                              detail=word, at=written_at or utcnow())
            session = await _end(machine, turn, session, "opt_out")
        case CommandAction.OPT_IN:
            turn.contact_changed = True
            await consent.set(turn.conn, turn.contact, opted_out=False, source="keyword", actor="contact",
                              detail=word, at=written_at or utcnow())
        case CommandAction.END:
            session = await _end(machine, turn, session, "user_ended")
        case CommandAction.RESTART:
            session = await _end(machine, turn, session, "restart")
            route = True
        case CommandAction.HANDOFF:
            session = await _handoff(turn, session)
    if command.reply:
        text = turn.expressions.render_text(command.reply, turn.contact_context())
        # the stop word's confirmation is the one message the consent rule lets through after an opt-out
        node = OPT_OUT_NOTICE if command.action is CommandAction.OPT_OUT else session.current_node if session else None
        await turn.send(session, node, "text", {"body": text})
        if session is not None:
            await turn.save(session)
    return session, route


async def _end(machine: Machine, turn: Turn, session: SessionState | None, reason: str) -> SessionState | None:
    """End the session if there is one; the contact has none afterwards (None)."""
    if session is not None:
        await machine.end(turn, session, reason)
        await turn.save(session)
    return None


async def _handoff(turn: Turn, session: SessionState | None) -> SessionState:
    if session is None:
        session = SessionState(id=None, contact_id=turn.contact.id, flow_id=AGENT_FLOW, flow_version="-")
        await turn.insert(session)
    else:
        await turn.cancel_timers(session)
    rt = session.runtime
    rt["seq"] = session.seq + 1
    rt["handoff"] = {"queue": None, "note": "asked for an agent", "then": None, "at": turn.now.isoformat()}
    for key in ("wake_at", "http", "retries"):
        rt.pop(key, None)
    session.state, session.waiting_for = "handoff", "agent"
    session.expires_at = turn.now + turn.config.session_timeout
    await turn.save(session)
    return session
