"""One supervised OS process: how to start it, where its output goes, how to stop it."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import psutil

if TYPE_CHECKING:
    from agora_cli.forkserver import ForkedProcess, ForkServer

SERVICE_GRACE_SECONDS = 12.0  # services promise to exit within 10 s of SIGTERM
INFRA_GRACE_SECONDS = 10.0
_BACKOFF_START = 0.5
_BACKOFF_CAP = 30.0
# A process that stayed up this long is considered healthy again: its next crash restarts fast.
_STABLE_SECONDS = 10.0
_TAIL_BLOCK_BYTES = 64 * 1024


@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    user: str | None = None
    stop_signal: int = signal.SIGTERM
    # A Python service's module, and the fork server that can start it without a fresh interpreter.
    module: str | None = None
    forkserver: ForkServer | None = None
    process: subprocess.Popen[bytes] | ForkedProcess | None = None
    started_at: float = 0.0
    created: float | None = None
    restarts: int = 0
    crashes_in_a_row: int = 0
    restart_at: float | None = None
    stopping: bool = False
    # Stopped by the operator (`agora chaos stop`): not restarted until `resume`.
    held: bool = False
    # Where this run's lines begin in the log, which earlier runs' lines precede.
    log_start: int | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def recent_log(self, lines: int = 20) -> list[str]:
        """The last lines of the log that this run of the supervisor wrote."""
        return tail(self.log_path, lines, since=self.log_start or 0)

    def spawn(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        if self.log_start is None:
            self.log_start = self.log_path.stat().st_size if self.log_path.exists() else 0
        self.process = self._fork() or self._exec()
        self.started_at = time.monotonic()
        self.created = create_time(self.process.pid)
        self.restart_at = None

    def _fork(self) -> ForkedProcess | None:
        if self.forkserver is None or self.module is None:
            return None
        return self.forkserver.spawn(self.module, self.argv, self.env, self.log_path)

    def _exec(self) -> subprocess.Popen[bytes]:
        with open(self.log_path, "ab") as log:
            # Own process group: a Ctrl-C in the terminal reaches the supervisor only, which then
            # stops everything in order.
            return subprocess.Popen(
                self.argv,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                process_group=0,
                user=self.user,
                group=self.user,
                extra_groups=[] if self.user else None,
            )

    def resume(self) -> None:
        """Starts again a process the operator stopped, with the same command line (ports, data)."""
        self.held = False
        self.stopping = False
        self.crashes_in_a_row = 0
        self.spawn()

    def exited(self) -> int | None:
        """The exit status if the process has ended (and was not asked to), else None."""
        if self.process is None or self.stopping:
            return None
        return self.process.poll()

    def schedule_restart(self, now: float) -> float:
        """Capped exponential backoff, reset once the process had stayed up a while."""
        if now - self.started_at >= _STABLE_SECONDS:
            self.crashes_in_a_row = 0
        delay = min(_BACKOFF_START * 2**self.crashes_in_a_row, _BACKOFF_CAP)
        self.crashes_in_a_row += 1
        self.restart_at = now + delay
        return delay

    def signal(self, signum: int) -> None:
        if self.process and self.process.poll() is None:
            try:
                os.kill(self.process.pid, signum)
            except ProcessLookupError:
                pass

    async def stop(self, grace: float) -> None:
        """Asks the process to stop, and kills it if it is still there after `grace` seconds."""
        self.stopping = True
        if self.process is None or self.process.poll() is not None:
            return
        self.signal(self.stop_signal)
        deadline = time.monotonic() + grace
        # Polled: a blocking wait per process would need a thread each, and the default pool is small.
        while self.process.poll() is None and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        if self.process.poll() is None:
            self.signal(signal.SIGKILL)
            await asyncio.to_thread(self.process.wait)


def create_time(pid: int | None) -> float | None:
    try:
        return psutil.Process(pid).create_time() if pid else None
    except psutil.Error:
        return None


def same_process_alive(pid: int | None, started: float | None) -> bool:
    """True if `pid` still runs and is the process we started (not a reused pid)."""
    if not pid:
        return False
    try:
        process = psutil.Process(pid)
        return process.status() != psutil.STATUS_ZOMBIE and (
            started is None or abs(process.create_time() - started) < 0.01
        )
    except psutil.Error:
        return False


def tail(path: Path, lines: int = 20, *, since: int = 0) -> list[str]:
    """The last `lines` whole lines of the log, of those written after byte `since`."""
    if lines <= 0:
        return []
    try:
        with open(path, "rb") as file:
            start = file.seek(0, os.SEEK_END)
            chunk = b""
            # Back one block at a time until a line break precedes the first line wanted.
            while start > since and chunk.count(b"\n") <= lines:
                block_start = max(since, start - _TAIL_BLOCK_BYTES)
                file.seek(block_start)
                chunk = file.read(start - block_start) + chunk
                start = block_start
    except FileNotFoundError:
        return []
    return chunk.decode(errors="replace").splitlines()[-lines:]
