"""The JSON Schema of flow files, generated from the pydantic models (for editors and CI).

`src/waflow/engine/flow.schema.json` is this output; `waflow flow schema -o ...` rewrites it and a
test checks it is up to date.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from waflow.engine.flows.definition import FlowDefinition

SCHEMA_ID = "https://waflow.dev/schemas/flow.schema.json"
SCHEMA_PATH = Path(__file__).resolve().parent.parent / "flow.schema.json"


def flow_json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) a flow document must satisfy (types only: see `validate_flow`)."""
    schema = FlowDefinition.model_json_schema(by_alias=True, mode="validation")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        **schema,
        "description": "A waflow conversation flow: triggers, a start node and a graph of nodes.",
    }


def schema_text() -> str:
    return json.dumps(flow_json_schema(), indent=2, ensure_ascii=False, sort_keys=False) + "\n"


def write_schema(path: Path = SCHEMA_PATH) -> Path:
    path.write_text(schema_text(), encoding="utf-8")
    return path
