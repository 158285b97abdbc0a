"""Deploying flows as immutable versions, and reading them back (cached: a version never changes).

`deploy_flow(conn, defn)` validates the definition, stores it under its content hash and makes it
the flow's active version; deploying the same content again returns the same version number and
writes no row. Sessions record the hash (`sessions.flow_version`) and keep running that version.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection

from waflow.engine.flows.definition import FlowDefinition
from waflow.engine.flows.problems import FlowLoadError
from waflow.engine.flows.validate import has_errors, validate_flow
from waflow.engine.flows.versions import FlowVersion, definition_from_canonical
from waflow.store.flows import FlowVersionRecord, FlowVersionRepository, deploy_generation

flow_versions = FlowVersionRepository()


class FlowNotFound(LookupError):
    """No deployed (active) version of that flow, or no such version."""


@dataclass(frozen=True, slots=True)
class Deployed:
    """A deployed version: `version` counts per flow, `content_hash` identifies the content."""

    flow_id: str
    version: int
    content_hash: str
    definition: FlowDefinition


async def deploy(
    conn: AsyncConnection, defn: FlowDefinition, *, known_flows: dict[str, FlowDefinition] | None = None
) -> tuple[Deployed, bool]:
    """Validate and deploy `defn`; returns the version and whether it is new. Raises `FlowLoadError`."""
    problems = validate_flow(defn, known_flows=known_flows)
    if has_errors(problems):
        raise FlowLoadError([p for p in problems if p.is_error], source=f"flow {defn.id!r}")
    fv = FlowVersion.of(defn)
    record, created = await flow_versions.deploy(conn, fv.flow_id, fv.version, orjson.loads(fv.canonical))
    return Deployed(record.flow_id, record.version, record.content_hash, defn), created


async def deploy_flow(conn: AsyncConnection, defn: FlowDefinition) -> int:
    """Deploy `defn` as the active version of its flow; returns the version number (1, 2, ...)."""
    deployed, _ = await deploy(conn, defn)
    return deployed.version


def _definition(record: FlowVersionRecord) -> FlowDefinition:
    return definition_from_canonical(orjson.dumps(record.definition).decode())


class FlowCatalog:
    """Definitions by (flow id, hash), cached in-process (versions are immutable), and the active set.

    `refresh` (every engine round) does not ask the database every time: the fingerprint query was ~0.65 ms of
    each round. Staleness bound: a deploy (or deactivate) made through this process's store is seen by the first
    round that starts after it committed, provided it commits within `recheck` seconds of its statements (the
    catalog looks every round for that long after this process bumped `deploy_generation`); a deploy by
    another process is seen at most `recheck` seconds (2 s by default) after it committed. A session that
    already runs is not affected either way: it keeps the version it started on (`version`).
    """

    def __init__(
        self, cache_size: int = 1_024, *, recheck: float = 2.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._versions: OrderedDict[tuple[str, str], FlowDefinition] = OrderedDict()
        self._size = cache_size
        self._active: dict[str, Deployed] = {}
        self._fingerprint: tuple[int, int] | None = None
        self._recheck = recheck
        self._clock = clock
        self._checked_at = -float("inf")  # when the fingerprint was last read
        self._generation = deploy_generation()  # this process's deploys the last look accounted for
        self._watch_until = -float("inf")  # look every round until then (a deploy of ours may still commit)

    def _remember(self, flow_id: str, content_hash: str, defn: FlowDefinition) -> None:
        self._versions[(flow_id, content_hash)] = defn
        self._versions.move_to_end((flow_id, content_hash))
        while len(self._versions) > self._size:
            self._versions.popitem(last=False)

    async def version(self, conn: AsyncConnection, flow_id: str, content_hash: str) -> FlowDefinition:
        """The definition a session runs (`FlowNotFound` if that version was never deployed)."""
        key = (flow_id, content_hash)
        hit = self._versions.get(key)
        if hit is not None:
            return hit
        record = await flow_versions.by_hash(conn, flow_id, content_hash)
        if record is None:
            raise FlowNotFound(f"flow {flow_id!r} has no deployed version {content_hash[:12]}")
        defn = _definition(record)
        self._remember(flow_id, content_hash, defn)
        return defn

    async def refresh(self, conn: AsyncConnection, *, force: bool = False) -> bool:
        """Reload the active versions if a deploy changed them; True when it reloaded.

        Most calls send no statement at all (see the class's staleness bound); a look is one cheap query, and
        the active set is read again only when its fingerprint changed (or with `force`).
        """
        now = self._clock()
        generation = deploy_generation()
        if generation != self._generation:
            self._generation = generation
            self._watch_until = now + self._recheck
        if not force and self._fingerprint is not None and now < self._watch_until:
            pass  # a deploy of this process may be committing: look now
        elif not force and self._fingerprint is not None and now - self._checked_at < self._recheck:
            return False
        fingerprint = await flow_versions.fingerprint(conn)
        self._checked_at = now
        if not force and fingerprint == self._fingerprint:
            return False
        active: dict[str, Deployed] = {}
        for record in await flow_versions.all_active(conn):
            defn = self._versions.get((record.flow_id, record.content_hash)) or _definition(record)
            self._remember(record.flow_id, record.content_hash, defn)
            active[record.flow_id] = Deployed(record.flow_id, record.version, record.content_hash, defn)
        self._active = active
        # the watch goes on until it times out: the change seen may be an earlier deploy's, not the one awaited
        self._fingerprint = fingerprint
        return True

    @property
    def active(self) -> dict[str, Deployed]:
        """Active versions by flow id, as of the last `refresh`."""
        return self._active

    async def active_version(self, conn: AsyncConnection, flow_id: str) -> Deployed:
        """The active version of `flow_id`, read from the store (`FlowNotFound` when none)."""
        record = await flow_versions.active(conn, flow_id)
        if record is None:
            raise FlowNotFound(f"flow {flow_id!r} is not deployed")
        defn = await self.version(conn, flow_id, record.content_hash)
        return Deployed(record.flow_id, record.version, record.content_hash, defn)
