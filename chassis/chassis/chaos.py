"""Server-side fault injection, switched on per service by `agora chaos delay|fail`.

Off unless set: the switch reads `<AGORA_CHAOS_DIR>/<service>.json`, written by the CLI as
`{"delay_ms": 500, "delay_until": <unix time>, "fail_rate": 0.2, "fail_until": null}`: each fault
ends at its own time (`null`: when cleared). The file is re-read at most twice a second, so a
fault takes effect quickly and costs nothing measurable on the hot path.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from dataclasses import dataclass
from pathlib import Path

_REREAD_SECONDS = 0.5


class InjectedFault(Exception):
    """A failure injected on purpose; the gRPC server reports it as UNAVAILABLE."""


@dataclass(frozen=True)
class Faults:
    delay_ms: float = 0.0
    delay_until: float | None = None
    fail_rate: float = 0.0
    fail_until: float | None = None

    def delaying(self, now: float) -> bool:
        return self.delay_ms > 0 and (self.delay_until is None or now < self.delay_until)

    def failing(self, now: float) -> bool:
        return self.fail_rate > 0 and (self.fail_until is None or now < self.fail_until)


class ChaosSwitch:
    def __init__(self, directory: Path | None, service: str, *, rng: random.Random | None = None):
        self._path = directory / f"{service}.json" if directory else None
        self._faults = Faults()
        self._read_at = 0.0
        self._rng = rng or random.Random()

    def current(self) -> Faults:
        now = time.monotonic()
        if self._path is not None and now - self._read_at >= _REREAD_SECONDS:
            self._read_at = now
            try:
                self._faults = Faults(**json.loads(self._path.read_text()))
            except (FileNotFoundError, ValueError, TypeError):
                self._faults = Faults()
        return self._faults

    async def before_call(self, method: str) -> None:
        faults, now = self.current(), time.time()
        if faults.delaying(now):
            await asyncio.sleep(faults.delay_ms / 1000)
        if faults.failing(now) and self._rng.random() < faults.fail_rate:
            raise InjectedFault(f"chaos: injected failure in {method}")
