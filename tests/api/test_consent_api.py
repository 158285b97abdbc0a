"""The consent routes: opt-out / opt-in recorded with who and how, their history, and bad input named."""

from __future__ import annotations

from .conftest import API_KEY, ApiServer


def test_an_api_opt_out_is_recorded_with_the_key_fingerprint_and_refuses_sends(api_server: ApiServer) -> None:
    contact = "34600777001"
    with api_server.client() as c:
        r = c.post(f"/api/v1/contacts/{contact}/opt-out", json={"by": "Ana", "note": "asked by phone"})
        assert r.status_code == 200, r.text
        out = r.json()
        assert out["opted_out"] and out["changed"] and out["opted_out_at"]
        [event] = out["history"]
        assert (event["action"], event["source"], event["detail"]) == ("opt_out", "api", "asked by phone")
        assert event["actor"].startswith("key:") and event["actor"].endswith("(Ana)")
        assert API_KEY not in r.text, "the key itself is never recorded"
        again = c.post(f"/api/v1/contacts/{contact}/opt-out").json()
        assert again["changed"] is False and len(again["history"]) == 1
        sent = c.post("/api/v1/messages", json={"to": contact, "type": "text", "content": {"body": "hi"}})
        assert sent.status_code == 409 and sent.json()["error"] == "opted_out", sent.text
        assert "opt in again" in sent.json()["message"]
        assert c.get(f"/api/v1/contacts/{contact}").json()["opted_out"] is True
        back = c.post(f"/api/v1/contacts/{contact}/opt-in", json={"note": "signed the form"}).json()
        assert back["opted_out"] is False and back["opted_out_at"] is None
        assert [e["action"] for e in back["history"]] == ["opt_in", "opt_out"]
        read = c.get(f"/api/v1/contacts/{contact}/consent").json()
        assert read["changed"] is None and read["history"] == back["history"]
        sent = c.post("/api/v1/messages", json={"to": contact, "type": "template",
                                                "content": {"name": "hello_world", "language": {"code": "en_US"}}})
        assert sent.status_code == 202, sent.text


def test_consent_routes_name_what_is_wrong(api_server: ApiServer) -> None:
    with api_server.client() as c:
        r = c.post("/api/v1/contacts/34600777999/opt-in")
        assert r.status_code == 404 and "nothing to opt in" in r.json()["message"]
        assert c.get("/api/v1/contacts/34600777999/consent").status_code == 404
        r = c.post("/api/v1/contacts/34600777002/opt-out", json={"by": "x" * 81})
        assert r.status_code == 422 and "body.by" in r.text, r.text
        r = c.post("/api/v1/contacts/34600777002/opt-out", json={"reason": "extra"})
        assert r.status_code == 422 and "reason" in r.text, r.text
        r = c.post("/api/v1/contacts/bad%20key/opt-out")
        assert r.status_code == 422, r.text
