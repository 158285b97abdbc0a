"""The http node: the request is rendered inside the transaction, made after it commits, and its
response applied in a new transaction (see `worker.py`)."""

from __future__ import annotations

import secrets
from typing import Any

from waflow.engine.flows.nodes import HttpNode
from waflow.engine.runtime.executors.base import NodeCtx
from waflow.engine.runtime.steps import CallHttp, End, Goto, Step
from waflow.engine.runtime.turn import HttpJob


def _request(c: NodeCtx, node: HttpNode) -> dict[str, Any]:
    request: dict[str, Any] = {
        "method": node.method,
        "url": c.render(node.url),
        "headers": {name: c.render(value) for name, value in node.headers.items()},
        "params": {name: c.render(value) for name, value in node.query.items()},
        "timeout": node.timeout.total_seconds(),
    }
    if node.body is not None:
        request["content"] = c.render(node.body)
    elif node.json_ is not None:
        request["json"] = c.render_value(node.json_)
    return request


async def enter_http(c: NodeCtx, node: HttpNode) -> Step:
    request = await c.compute(_request, c, node)
    call_id = secrets.token_hex(8)
    c.session.runtime["http"] = {"id": call_id, "node": c.node_id, "request": request, "attempts": 1}
    assert c.session.id is not None
    contact = c.turn.contact
    c.turn.http_jobs.append(
        HttpJob(c.session.id, contact.id, contact.phone_number_id, contact.contact_key, call_id, c.node_id, request)
    )
    return CallHttp()


async def http_result(c: NodeCtx, node: HttpNode, response: dict[str, Any]) -> Step:
    """Apply the outcome: `response` is `{status, json, text, headers}` or `{error: ...}`."""
    c.turn.response = response
    failed = "error" in response or int(response.get("status", 0)) >= 400
    if failed:
        c.session.vars["http_error"] = response.get("error") or f"HTTP {response.get('status')}"
        if node.on_error is not None:
            return Goto(node.on_error)
        return End("error", hard=True, error=f"http node {c.node_id!r}: {c.session.vars['http_error']}")
    c.session.vars.pop("http_error", None)
    c.session.vars.update(await c.compute(c.render_in_order, node.save))  # in order, like `set`
    return Goto(node.next)
