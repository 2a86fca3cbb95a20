"""Graceful shutdown, on a real process: SIGTERM stops new work and lets work in flight finish."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
import grpc

from tests.support import free_port


async def test_sigterm_finishes_the_call_in_flight_then_exits_cleanly() -> None:
    grpc_port, http_port = free_port(), free_port()
    env = {**os.environ, "AGORA_SERVICE": "slow", "AGORA_GRPC_PORT": str(grpc_port), "AGORA_HTTP_PORT": str(http_port),
           "AGORA_MTLS": "off", "AGORA_ALLOWED_CALLERS": "tester"}
    script = str(Path(__file__).with_name("slow_service.py"))
    # Started once, before the event loop has other work to block.
    process = subprocess.Popen(  # noqa: ASYNC220
        [sys.executable, "-P", script], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(200):
                try:
                    async with http.get(f"http://127.0.0.1:{http_port}/readyz") as answer:
                        if answer.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.05)
            async with grpc.aio.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
                call = channel.unary_unary("/test.Slow/Work")(b"1.0", metadata=[("x-agora-caller", "tester")], timeout=10)
                await asyncio.sleep(0.3)
                process.send_signal(signal.SIGTERM)
                await asyncio.sleep(0.1)
                async with http.get(f"http://127.0.0.1:{http_port}/readyz") as answer:
                    assert answer.status == 503  # no longer taking work
                assert await call == b"finished"
        assert process.wait(timeout=15) == 0
        log = process.stdout.read().decode() if process.stdout else ""
        assert "service_stopped" in log
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
