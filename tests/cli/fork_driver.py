"""Drives a fork server the way the supervisor does, in a process of its own: asking for a fork
makes the asker a child subreaper, which the test run itself must not become.

Prints one JSON line with what it saw. Run by tests/cli/test_forkserver.py.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import psutil

from agora_cli.forkserver import ForkServer


def finished(process, timeout: float = 20.0) -> int | None:
    deadline = time.monotonic() + timeout
    while process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    return process.returncode


def main(work: Path) -> None:
    probe_dir = str(Path(__file__).parent / "fork_probe")
    base = {**os.environ, "PYTHONPATH": probe_dir, "PROBE_ONLY_IN_THE_FORK_SERVER": "yes"}
    server = ForkServer(work / "forkserver.log", base)
    argv = [sys.executable, "-P", "-m", "forkprobe"]
    service_env = {"PYTHONPATH": probe_dir, "PROBE_OUT": str(work / "first.json"), "PROBE_VALUE": "first", "PROBE_EXIT": "3"}
    first = server.spawn("forkprobe", argv, service_env, work / "first.log")
    # Only once the fork server has answered: until its middle child exits, that is the parent.
    first_parent = psutil.Process(first.pid).ppid()
    first_status = finished(first)

    second = server.spawn(
        "forkprobe", argv, {**service_env, "PROBE_OUT": str(work / "second.json"), "PROBE_SLEEP": "60"}, work / "second.log"
    )
    while not (work / "second.json").exists():
        time.sleep(0.02)
    os.kill(second.pid, signal.SIGKILL)
    second_status = finished(second)

    server_pid = server.pid
    server.close()
    server_gone = finished(server._process) is not None
    after_close = server.spawn("forkprobe", argv, service_env, work / "third.log")
    print(
        json.dumps(
            {
                "driver": os.getpid(),
                "first": first.pid,
                "first_parent": first_parent,
                "first_status": first_status,
                "second_status": second_status,
                "server_pid": server_pid,
                "server_gone": server_gone,
                "after_close": after_close is None,
            }
        )
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]))
