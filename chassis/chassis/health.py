"""Readiness checks shared by the admin HTTP server and the gateway's own `/readyz`."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

ReadinessCheck = Callable[[], Awaitable[object]]

CHECK_TIMEOUT_SECONDS = 1.0


class Readiness:
    def __init__(self) -> None:
        self._checks: dict[str, ReadinessCheck] = {}
        self.accepting = False  # false before start-up completes and from the start of shutdown

    def add(self, name: str, check: ReadinessCheck) -> None:
        self._checks[name] = check

    async def failing(self) -> list[str]:
        """Names of the dependencies that did not answer; empty when ready."""
        if not self.accepting:
            return ["starting or stopping"]
        names = list(self._checks)
        results = await asyncio.gather(
            *(asyncio.wait_for(self._checks[name](), CHECK_TIMEOUT_SECONDS) for name in names),
            return_exceptions=True,
        )
        return [name for name, result in zip(names, results, strict=True) if isinstance(result, BaseException)]
