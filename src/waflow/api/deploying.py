"""Deploying flows: from an uploaded document (admin API) or a folder of files (`flows_dir` at startup).

A flow is loaded, validated knowing the flows already active (for `goto` / `subflow`), and deployed as
an immutable version; the same content deployed again is the same version.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection

from waflow.engine.flows.check import FlowReport, check_flow_files, check_flow_text
from waflow.engine.flows.definition import FlowDefinition
from waflow.engine.flows.loader import Format
from waflow.engine.flows.problems import FlowProblem
from waflow.engine.flows.versions import definition_from_canonical
from waflow.engine.runtime.deploy import deploy
from waflow.store import Store
from waflow.store.flows import FlowVersionRepository

FLOW_SUFFIXES = (".yaml", ".yml", ".json")
_versions = FlowVersionRepository()


class FlowRejected(Exception):
    def __init__(self, source: str, problems: list[FlowProblem]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: " + "; ".join(str(p) for p in problems[:5]))


@dataclass(frozen=True, slots=True)
class DeployResult:
    flow_id: str
    version: int
    content_hash: str
    created: bool
    warnings: list[FlowProblem]


async def active_definitions(conn: AsyncConnection) -> dict[str, FlowDefinition]:
    return {
        r.flow_id: definition_from_canonical(orjson.dumps(r.definition).decode())
        for r in await _versions.all_active(conn)
    }


async def _deploy_report(conn: AsyncConnection, report: FlowReport, known: dict[str, FlowDefinition]) -> DeployResult:
    if not report.ok or report.definition is None:
        raise FlowRejected(report.source, report.errors or report.problems)
    deployed, created = await deploy(conn, report.definition, known_flows=known)
    return DeployResult(deployed.flow_id, deployed.version, deployed.content_hash, created, report.warnings)


async def deploy_text(
    store: Store, text: str | bytes, *, fmt: Format = "auto", source: str = "<upload>"
) -> DeployResult:
    """Validate and deploy one document; `FlowRejected` lists every problem with node, field and line."""
    async with store.begin() as conn:
        known = await active_definitions(conn)
        report = check_flow_text(text, source=source, fmt=fmt, known_flows=known)
        if report.definition is not None:
            known[report.definition.id] = report.definition
            report = check_flow_text(text, source=source, fmt=fmt, known_flows=known)
        return await _deploy_report(conn, report, known)


def flow_files(folder: str | os.PathLike[str]) -> list[Path]:
    root = Path(folder)
    return sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in FLOW_SUFFIXES)


async def deploy_files(store: Store, paths: Iterable[str | os.PathLike[str]]) -> list[DeployResult]:
    """Validate all files together, then deploy each (all or nothing: one transaction)."""
    reports = check_flow_files(list(paths))
    bad = [r for r in reports if not r.ok]
    if bad:
        raise FlowRejected(bad[0].source, bad[0].errors or bad[0].problems)
    async with store.begin() as conn:
        known = await active_definitions(conn)
        known.update({r.definition.id: r.definition for r in reports if r.definition is not None})
        return [await _deploy_report(conn, r, known) for r in reports]
