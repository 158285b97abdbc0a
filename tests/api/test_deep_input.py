"""Deeply nested JSON anywhere in the admin API is refused with a 4xx naming the problem, never a 500."""

from __future__ import annotations

import pytest

from .conftest import ApiServer


def nested(depth: int) -> str:
    """JSON text of objects nested `depth` deep (built as text: `json.dumps` itself stops at ~1,000)."""
    return '{"a":' * depth + '"x"' + "}" * depth


@pytest.mark.parametrize("depth", [40, 300, 2000])
def test_deep_input_is_refused_by_name(api_server: ApiServer, depth: int) -> None:
    json_type = {"content-type": "application/json"}
    with api_server.client() as c:
        send = f'{{"to": "34600111222", "type": "text", "content": {{"body": "hi", "extra": {nested(depth)}}}}}'
        start = f'{{"to": "34600111222", "vars": {nested(depth)}}}'
        for path, body in (("/api/v1/messages", send), ("/api/v1/flows/f/start", start)):
            r = c.post(path, content=body, headers=json_type)
            if depth < 1000:  # within what the JSON parser takes: the models' depth bound names it
                assert r.status_code == 422 and "nested deeper than 32 levels" in r.text, r.text[:300]
            else:  # past the parser's own recursion limit: refused while parsing
                assert r.status_code == 400 and "parsing the body" in r.text, r.text[:300]
            assert "Traceback" not in r.text
