"""`FlowRegistry`: a folder of flow files (YAML / JSON), loaded, checked together and deployed."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from waflow.engine.flows.definition import FlowDefinition
from waflow.engine.flows.loader import load_flow_file
from waflow.engine.runtime.deploy import Deployed, deploy
from waflow.store import Store

SUFFIXES = (".yaml", ".yml", ".json")


@dataclass(frozen=True, slots=True)
class DeployResult:
    deployed: Deployed
    created: bool  # False: the same content was already deployed
    path: Path


class FlowRegistry:
    """Flows of a folder: `load()` parses them all (any problem raises `FlowLoadError` naming the file),
    `deploy(store)` deploys them in one transaction (jumps between them are checked against each other)."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        self.flows: dict[str, tuple[Path, FlowDefinition]] = {}

    def load(self) -> dict[str, FlowDefinition]:
        flows: dict[str, tuple[Path, FlowDefinition]] = {}
        for path in sorted(self.folder.iterdir()):
            if path.suffix.lower() not in SUFFIXES or not path.is_file():
                continue
            defn = load_flow_file(path)
            if defn.id in flows:
                raise ValueError(f"flow id {defn.id!r} is in both {flows[defn.id][0].name} and {path.name}")
            flows[defn.id] = (path, defn)
        self.flows = flows
        return {flow_id: defn for flow_id, (_, defn) in flows.items()}

    async def deploy(self, store: Store) -> list[DeployResult]:
        known = self.load() if not self.flows else {k: d for k, (_, d) in self.flows.items()}
        results: list[DeployResult] = []
        async with store.begin() as conn:
            for flow_id, (path, defn) in self.flows.items():
                deployed, created = await deploy(conn, defn, known_flows=known)
                results.append(DeployResult(deployed, created, path))
                del flow_id
        return results
