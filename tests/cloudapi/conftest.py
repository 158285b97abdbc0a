from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from waflow.cloudapi import CloudAPIClient, Timeouts

from .graph_server import GraphServer, run_graph_server

TOKEN = "EAAsecret-token-value-0123456789"
PHONE_ID = "106540352242922"
WABA_ID = "102290129340398"


@pytest.fixture
async def graph() -> AsyncIterator[GraphServer]:
    async with run_graph_server() as server:
        yield server


@pytest.fixture
async def client(graph: GraphServer) -> AsyncIterator[CloudAPIClient]:
    async with CloudAPIClient(
        phone_number_id=PHONE_ID, waba_id=WABA_ID, token=TOKEN, base_url=graph.base_url,
        timeouts=Timeouts(connect=2, read=2, total=3),
    ) as c:
        yield c
