"""contracts/openapi/edge.json is the document the gateway serves: a change to the edge is a
change to that committed file, reviewed, and checked for breaking changes by
scripts/check-contracts.sh."""

import json

import aiohttp
from contract_helpers import EDGE_OPENAPI, load_tool

from tests.support import free_port, serving_http


async def test_the_committed_document_is_the_one_the_gateway_serves() -> None:
    edge_openapi = load_tool("edge_openapi")
    async with serving_http(edge_openapi.edge_app(), free_port()) as url, aiohttp.ClientSession() as http:
        async with http.get(f"{url}/api/openapi.json") as answer:
            served = await answer.json()

    committed = json.loads(EDGE_OPENAPI.read_text())
    breaking = load_tool("openapi_diff").breaking_changes(committed, served)
    assert EDGE_OPENAPI.read_text() == edge_openapi.render(served), (
        "the edge's API changed and contracts/openapi/edge.json is stale: run "
        "`.venv/bin/python contracts/tools/edge_openapi.py --write` and review the diff of "
        "contracts/openapi/edge.json: clients are written against the published API (API.md), so "
        "the edge may only grow. Breaking changes against the committed file: "
        + ("; ".join(breaking) or "none")
    )
