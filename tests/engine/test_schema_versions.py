"""The published JSON Schema is current and agrees with the loader; version hashes are stable."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from waflow.engine import (
    FlowVersion,
    canonical_json,
    definition_from_canonical,
    flow_hash,
    flow_json_schema,
    load_flow_data,
    load_flow_file,
    load_flow_text,
    parse_duration,
)
from waflow.engine.flows.durations import format_duration
from waflow.engine.flows.schema import SCHEMA_PATH, schema_text

from .helpers import EXAMPLE_FILES


def test_schema_file_is_up_to_date() -> None:
    assert SCHEMA_PATH.read_text(encoding="utf-8") == schema_text(), "run: waflow flow schema -o " + str(SCHEMA_PATH)


def test_schema_is_valid_draft_2020_12() -> None:
    jsonschema.Draft202012Validator.check_schema(flow_json_schema())


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.name)
def test_examples_satisfy_the_schema(path: Path) -> None:
    validator = jsonschema.Draft202012Validator(flow_json_schema())
    errors = [e.message for e in validator.iter_errors(yaml.safe_load(path.read_text()))]
    assert errors == []


@pytest.mark.parametrize(
    "data",
    [
        {"id": "x", "start": "a", "nodes": {"a": {"type": "nope"}}},
        {"id": "x", "start": "a", "nodes": {"a": {"type": "wait", "duration": "5 minutes", "next": "a"}}},
        {"id": "x", "start": "a", "nodes": {"a": {"type": "end", "colour": "red"}}},
        {"id": "x", "start": "a", "nodes": {"a": {"type": "question", "text": "q", "save_as": "v", "validate": "x"}}},
        {"id": "x", "start": "a", "triggers": [{"keyword": []}], "nodes": {"a": {"type": "end"}}},
    ],
)
def test_schema_and_loader_refuse_the_same_documents(data: dict[str, object]) -> None:
    validator = jsonschema.Draft202012Validator(flow_json_schema())
    assert list(validator.iter_errors(data))
    with pytest.raises(Exception):  # noqa: B017 - FlowLoadError; the point is both refuse
        load_flow_data(data)


def test_hash_ignores_format_order_comments_and_spelled_out_defaults() -> None:
    base = load_flow_text(
        "id: f\nstart: a\nnodes:\n  a: {type: question, text: q, save_as: v, next: b}\n  b: {type: end}\n"
    )
    same = load_flow_text(
        "# a comment\nnodes:\n  b: {type: end}\n  a: {next: b, save_as: v, text: q, type: question, retries: 2,"
        " validate: text}\nstart: a\nid: f\n"
    )
    as_json = load_flow_text(
        json.dumps(
            yaml.safe_load(
                "id: f\nstart: a\nnodes: {a: {type: question, text: q, save_as: v, next: b}, b: {type: end}}"
            )
        ),
        fmt="json",
    )
    assert flow_hash(base) == flow_hash(same) == flow_hash(as_json)
    assert len(flow_hash(base)) == 64
    changed = load_flow_text(
        "id: f\nstart: a\nnodes:\n  a: {type: question, text: Q, save_as: v, next: b}\n  b: {type: end}\n"
    )
    assert flow_hash(changed) != flow_hash(base)


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.name)
def test_canonical_round_trip(path: Path) -> None:
    defn = load_flow_file(path)
    version = FlowVersion.of(defn)
    assert version.flow_id == defn.id and version.version == flow_hash(defn)
    again = definition_from_canonical(canonical_json(defn))
    assert again == defn and flow_hash(again) == version.version
    assert version.definition() == defn


@pytest.mark.parametrize(
    ("text", "seconds", "canonical"),
    [
        ("45s", 45, "45s"),
        ("30m", 1800, "30m"),
        ("2h", 7200, "2h"),
        ("1d", 86400, "1d"),
        ("1h30m", 5400, "1h30m"),
        (" 90M ", 5400, "1h30m"),
        (600, 600, "10m"),
        ("1w", 604800, "7d"),
    ],
)
def test_durations(text: str | int, seconds: int, canonical: str) -> None:
    value = parse_duration(text)
    assert value.total_seconds() == seconds and format_duration(value) == canonical
