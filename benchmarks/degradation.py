"""The product page while recommendations is healthy, delayed by 5 s, and stopped.

    .venv/bin/python -m benchmarks.degradation [--seconds 10] [--clients 8]

Starts the part of the city a product page needs (gateway, identity, catalog, inventory,
recommendations) in a temporary AGORA_HOME, with the gateway's micro-cache off so that every
request takes the full path. Each phase sends product-page requests for random products from
`--clients` concurrent clients and reports the latency percentiles, the answers that were not 200,
and how many pages said `degraded: ["recommendations"]`. The healthy phase is the baseline: the
other phases are reported as ratios to it, and against the 300 ms p99 the design promises.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from benchmarks.events import summary
from benchmarks.gateway import AGORA, ROOT, free_port

SERVICES = "gateway,identity,catalog,inventory,recommendations"
DELAY_MS = 5000
TARGET_P99_MS = 300


def agora(env: dict[str, str], *args: str) -> str:
    return subprocess.run([str(AGORA), *args], env=env, check=True, capture_output=True, text=True, cwd=ROOT).stdout


async def product_ids(http: aiohttp.ClientSession, base: str) -> list[str]:
    ids: list[str] = []
    for page in (1, 2, 3):
        async with http.get(f"{base}/api/v1/products", params={"page": page, "page_size": 100}) as answer:
            ids += [item["id"] for item in (await answer.json())["items"]]
    return ids


async def phase(http: aiohttp.ClientSession, base: str, products: list[str], seconds: float, clients: int) -> dict:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    degraded = 0
    stop = time.monotonic() + seconds

    async def client(rng: random.Random) -> None:
        nonlocal degraded
        while time.monotonic() < stop:
            started = time.perf_counter()
            async with http.get(f"{base}/api/v1/products/{rng.choice(products)}") as answer:
                body: dict[str, Any] = await answer.json(content_type=None)
            latencies.append(time.perf_counter() - started)
            statuses[answer.status] = statuses.get(answer.status, 0) + 1
            degraded += "recommendations" in (body.get("degraded") or [])

    await asyncio.gather(*(client(random.Random(seed)) for seed in range(clients)))
    return {
        "requests": len(latencies),
        "not_200": sum(count for status, count in statuses.items() if status != 200),
        "degraded_recommendations": degraded,
        **summary(latencies),
    }


async def measure(base: str, env: dict[str, str], seconds: float, clients: int) -> dict:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=clients)) as http:
        products = await product_ids(http, base)
        await phase(http, base, products, min(2.0, seconds), clients)  # warm connections and caches
        results = {"healthy": await phase(http, base, products, seconds, clients)}

        agora(env, "chaos", "delay", "recommendations", str(DELAY_MS))
        await asyncio.sleep(1)  # the chassis re-reads fault settings twice a second
        results[f"recommendations delayed {DELAY_MS} ms"] = await phase(http, base, products, seconds, clients)
        agora(env, "chaos", "clear", "recommendations")

        agora(env, "chaos", "stop", "recommendations")
        results["recommendations stopped"] = await phase(http, base, products, seconds, clients)
        agora(env, "chaos", "start", "recommendations")
    baseline = results["healthy"]
    for figures in results.values():
        figures["p99_ratio"] = round(figures["p99_ms"] / baseline["p99_ms"], 2)
        figures["p99_within_target"] = figures["p99_ms"] <= TARGET_P99_MS
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--clients", type=int, default=8)
    options = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="agora-bench-degradation-"))
    gateway_port = free_port()
    env = {
        **{key: value for key, value in os.environ.items() if not key.startswith("AGORA_")},
        "AGORA_HOME": str(home),
        "AGORA_GATEWAY_PORT": str(gateway_port),
        "AGORA_CITY": "benchdegrade",
        "AGORA_SERVICES": SERVICES,
        "AGORA_RATE_LIMIT_PER_MINUTE": "100000000",
        "AGORA_CATALOG_CACHE_SECONDS": "0",
    }
    try:
        agora(env, "up", "--detach")
        results = asyncio.run(measure(f"http://127.0.0.1:{gateway_port}", env, options.seconds, options.clients))
        print(json.dumps({"clients": options.clients, "seconds_per_phase": options.seconds,
                          "target_p99_ms": TARGET_P99_MS, "phases": results}, indent=2))
    finally:
        subprocess.run([str(AGORA), "down"], env=env, capture_output=True, cwd=ROOT)
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
