"""The admin API: bearer keys on every route, and every bad input answered with a named field (never a 500)."""

from __future__ import annotations

import json

import pytest

from .conftest import ApiServer

FLOW = {
    "id": "hello",
    "start": "greet",
    "triggers": [{"keyword": ["hello"]}],
    "nodes": {"greet": {"type": "message", "text": "Hello!", "next": "done"}, "done": {"type": "end"}},
}


def _routes(server: ApiServer) -> list[tuple[str, str]]:
    with server.client() as c:
        spec = c.get("/openapi.json").json()
    out = []
    for path, ops in spec["paths"].items():
        for method in ops:
            concrete = path.replace("{message_id}", "1").replace("{session_id}", "1").replace("{campaign_id}", "1")
            concrete = concrete.replace("{flow_id}", "f").replace("{contact}", "34600111222")
            concrete = concrete.replace("{template_id}", "1").replace("{name}", "t")
            out.append((method.upper(), concrete))
    return out


def test_every_api_route_needs_a_valid_key(api_server: ApiServer) -> None:
    routes = [r for r in _routes(api_server) if r[1].startswith("/api/")]
    assert len(routes) >= 20
    for key in (None, "wrong-key-wrong-key-wrong", ""):
        with api_server.client(key) as c:
            for method, path in routes:
                r = c.request(method, path, json={})
                assert r.status_code == 401, (key, method, path, r.status_code, r.text)
                assert r.json()["error"] == "unauthorized"
                assert r.headers["www-authenticate"] == "Bearer"


def test_health_is_open_and_ready(api_server: ApiServer) -> None:
    with api_server.client(None) as c:
        assert c.get("/healthz").json() == {"status": "ok"}
        assert c.get("/readyz").json() == {"ready": True, "checks": {"database": "ok"}}
        metrics = c.get("/metrics").text
        assert "webhooks_received" in metrics and "waflow_outbox_send_seconds" in metrics


def test_send_is_enqueued_and_readable(api_server: ApiServer) -> None:
    with api_server.client() as c:
        before = len(api_server.notified)
        r = c.post("/api/v1/messages", json={"to": "34600111222", "type": "text", "content": {"body": "hi"}})
        assert r.status_code == 202, r.text
        oid = r.json()["id"]
        assert len(api_server.notified) == before + 1
        m = c.get(f"/api/v1/messages/{oid}").json()
        assert (m["status"], m["type"], m["content"]) == ("queued", "text", {"body": "hi"})
        assert m["business_initiated"] is True  # the user never wrote: the window is closed
        listed = c.get("/api/v1/messages", params={"contact": "34600111222"}).json()
        assert [x["id"] for x in listed["items"]][:1] == [oid]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"to": "34600111222", "type": "text", "content": {"body": ""}}, "body.content (text.body)"),
        ({"to": "34600111222", "type": "text", "content": {"body": "x" * 5000}}, "body.content (text.body)"),
        ({"to": "34600111222", "type": "fax", "content": {}}, "body.type"),
        ({"to": "abc", "type": "text", "content": {"body": "x"}}, "body.to"),
        ({"type": "text", "content": {"body": "x"}}, "body"),
        ({"to": "34600111222", "type": "text", "content": {"body": "x"}, "phone_number_id": "999"}, "phone_number_id"),
        ({"to": "34600111222", "type": "interactive", "content": {"type": "button", "body": {"text": "Pick"},
          "action": {"buttons": [{"type": "reply", "reply": {"id": "a", "title": "x" * 30}}]}}},
         "body.content (interactive.action.buttons[0].reply.title)"),
        ({"to": "34600111222", "type": "text", "content": {"body": "x"}, "surprise": 1}, "body.surprise"),
    ],
)
def test_bad_sends_name_the_field(api_server: ApiServer, body: dict[str, object], field: str) -> None:
    with api_server.client() as c:
        r = c.post("/api/v1/messages", json=body)
    assert r.status_code == 422, r.text
    fields = [p["field"] for p in r.json()["problems"]]
    assert field in fields, r.json()


def test_not_found_and_bad_ids(api_server: ApiServer) -> None:
    with api_server.client() as c:
        assert c.get("/api/v1/messages/424242").status_code == 404
        assert c.get("/api/v1/messages/99999999999999999999999").status_code == 422
        assert c.get("/api/v1/messages/0").status_code == 422
        assert c.get("/api/v1/sessions/5").status_code == 404
        assert c.get("/api/v1/contacts/34699999999").status_code == 404
        assert c.post("/api/v1/sessions/5/reply", json={"text": "hi"}).status_code == 404
        assert c.post("/api/v1/sessions/5/reply", json={"text": "   "}).status_code == 422


def test_flow_upload_validates_then_deploys_versions(api_server: ApiServer) -> None:
    with api_server.client() as c:
        broken = {**FLOW, "nodes": {"greet": {"type": "message", "text": "Hello!", "next": "nowhere"}}}
        r = c.post("/api/v1/flows", json=broken)
        assert r.status_code == 422, r.text
        [p] = [p for p in r.json()["problems"] if p["code"] == "unknown-target"]
        assert p["node"] == "greet" and p["field"] == "next"
        yaml_bad = "id: x\nstart: a\nnodes:\n  a: {type: message, text: 5, next: }\n  : oops"
        r = c.post("/api/v1/flows", content=yaml_bad, headers={"content-type": "application/yaml"})
        assert r.status_code == 422 and r.json()["problems"], r.text
        assert c.post("/api/v1/flows", content=b"", headers={"content-type": "application/yaml"}).status_code == 422
        r = c.post("/api/v1/flows", json=FLOW)
        assert r.status_code == 201, r.text
        assert (r.json()["flow_id"], r.json()["version"], r.json()["created"]) == ("hello", 1, True)
        again = c.post("/api/v1/flows", content=json.dumps(FLOW), headers={"content-type": "application/json"})
        assert (again.json()["version"], again.json()["created"]) == (1, False)
        v2 = {**FLOW, "nodes": {**FLOW["nodes"], "greet": {"type": "message", "text": "Hi!", "next": "done"}}}  # type: ignore[dict-item]
        assert c.post("/api/v1/flows", json=v2).json()["version"] == 2
        versions = c.get("/api/v1/flows/hello/versions").json()["items"]
        assert [(v["version"], v["active"]) for v in versions] == [(1, False), (2, True)]
        assert "hello" in [f["flow_id"] for f in c.get("/api/v1/flows").json()["items"]]
        r = c.post("/api/v1/flows/nope/start", json={"to": "34600111222"})
        assert r.status_code == 404, r.text


def test_templates_go_through_the_cloud_api(api_server: ApiServer) -> None:
    with api_server.client() as c:
        body = {"name": "order_ready", "language": "en_US", "category": "UTILITY",
                "components": [{"type": "BODY", "text": "Order {{1}} is ready"}]}
        r = c.post("/api/v1/templates", json=body)
        assert r.status_code == 201, r.text
        tid = r.json()["id"]
        names = [t["name"] for t in c.get("/api/v1/templates").json()["items"]]
        assert "order_ready" in names
        assert c.get(f"/api/v1/templates/{tid}").json()["id"] == tid
        bad = c.post("/api/v1/templates", json={**body, "name": "Bad Name"})
        assert bad.status_code == 422 and bad.json()["problems"][0]["field"] == "body.name"
        assert c.delete("/api/v1/templates/order_ready").json() == {"deleted": True}


def test_campaign_create_pause_resume(api_server: ApiServer) -> None:
    with api_server.client() as c:
        body = {"name": "spring", "template": "promo", "language": "en_US", "params": ["{name}"],
                "contacts": [{"phone": "+34 600 000 001", "name": "Ana"}, {"phone": "34600000002", "name": "Bo"}]}
        r = c.post("/api/v1/campaigns", json=body)
        assert r.status_code == 201, r.text
        cid = r.json()["id"]
        assert (r.json()["total"], r.json()["queued"], r.json()["status"]) == (2, 2, "running")
        assert c.post(f"/api/v1/campaigns/{cid}/pause").json()["status"] == "paused"
        assert c.post(f"/api/v1/campaigns/{cid}/pause").status_code == 409
        assert c.post(f"/api/v1/campaigns/{cid}/resume").json()["status"] == "running"
        assert cid in [x["id"] for x in c.get("/api/v1/campaigns").json()["items"]]
        bad = c.post("/api/v1/campaigns", json={**body, "contacts": [{"name": "no phone"}]})
        assert bad.status_code == 422 and bad.json()["problems"][0]["field"] == "body.contacts[0]"
