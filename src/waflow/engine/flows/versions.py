"""Content hashes for deploying immutable flow versions.

A version is the flow's canonical JSON (every field, defaults included, keys sorted); its hash is
the SHA-256 of that text. The same flow written in YAML or JSON, in another key order, with
different comments or with defaults spelled out, has the same hash. A session records the hash
it started with, and the runtime keeps running that version (`definition_from_canonical`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from waflow.engine.flows.definition import FlowDefinition

SCHEMA_VERSION = 1  # bumped when the meaning of a stored definition changes


def canonical_json(defn: FlowDefinition) -> str:
    """The definition as compact, key-sorted JSON (it round-trips through `definition_from_canonical`)."""
    data = defn.model_dump(mode="json", by_alias=True, exclude={"schema_"})
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def flow_hash(defn: FlowDefinition) -> str:
    """The version id of a definition: 64 hex characters (SHA-256 of the canonical JSON)."""
    digest = hashlib.sha256(f"waflow-flow-v{SCHEMA_VERSION}\n".encode())
    digest.update(canonical_json(defn).encode("utf-8"))
    return digest.hexdigest()


def short_hash(version: str) -> str:
    """The first 12 characters, for people."""
    return version[:12]


def definition_from_canonical(text: str) -> FlowDefinition:
    """Load a stored version back (it was valid when stored; pydantic checks it again)."""
    return FlowDefinition.model_validate_json(text)


@dataclass(frozen=True, slots=True)
class FlowVersion:
    """A deployable version: the flow id, the hash, and the canonical JSON to store."""

    flow_id: str
    version: str
    canonical: str

    @classmethod
    def of(cls, defn: FlowDefinition) -> FlowVersion:
        return cls(defn.id, flow_hash(defn), canonical_json(defn))

    def definition(self) -> FlowDefinition:
        return definition_from_canonical(self.canonical)
