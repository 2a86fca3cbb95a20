"""Readiness checks shared by the admin HTTP server and the gateway's own `/readyz`."""

from __future__ import annotations

import asyncio
import time
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


class SharedVerdict:
    """Readiness for an endpoint anyone may call (the gateway's public `/readyz`, which no rate
    limit charges, so that probes are never refused): asks at the same moment share one round of
    checks, and its verdict serves a while: a second when ready, a tenth of one when not, so that
    a recovery (or the city's start) shows at the next probe. A flood of probes then costs the
    dependencies a round a second, or ten while they fail, not one per probe. Starting and
    stopping show at once."""

    def __init__(
        self, readiness: Readiness, *, ready_for: float = 1.0, unready_for: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._readiness = readiness
        self._ready_for = ready_for
        self._unready_for = unready_for
        self._clock = clock
        self._verdict: list[str] | None = None
        self._fresh_until = 0.0
        self._round: asyncio.Future[list[str]] | None = None

    async def failing(self) -> list[str]:
        if not self._readiness.accepting:
            return await self._readiness.failing()
        if self._verdict is not None and self._clock() < self._fresh_until:
            return list(self._verdict)
        if self._round is None:
            self._round = asyncio.ensure_future(self._readiness.failing())
            self._round.add_done_callback(self._keep)
        # Shielded: one asker that leaves must not end the round the others wait for.
        return list(await asyncio.shield(self._round))

    def _keep(self, round_: asyncio.Future[list[str]]) -> None:
        self._round = None
        if not round_.cancelled() and round_.exception() is None:
            self._verdict = round_.result()
            self._fresh_until = self._clock() + (self._unready_for if self._verdict else self._ready_for)
