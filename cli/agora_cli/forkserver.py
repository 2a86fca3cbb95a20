"""A fork server: imports what every service imports once, then forks each service from it.

A cold city starts eleven Python services on a laptop's few cores. Each one spent about a
second of CPU importing the same modules (gRPC, OpenTelemetry, asyncpg, pydantic, aiohttp, NATS),
and those seconds, all at once, were most of the time to ready. The supervisor now starts this
process first, while the servers start; it imports the chassis, and then a service is a fork of it
that only has to run its own `__main__`. The imported modules' memory stays shared with the fork
server until written (the objects are frozen out of the garbage collector's reach, so collections
do not touch their pages).

Each service is forked twice so that its parent is the supervisor, not this process: the middle
child exits at once and the supervisor, a child subreaper, inherits the service. The supervisor can
then wait for it, signal it and restart it like any child it started itself, and the fork server
can go away once the city is up (a later restart starts a fresh interpreter).

The supervisor talks to it over a socket pair, one JSON line each way per service:
`{"module": ..., "title": ..., "env": {...}, "log": path}` and then `{"pid": N}` or `{"error": ...}`.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import importlib
import json
import os
import runpy
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

import setproctitle

# What every service imports; the gateway's web stack and Redis stay out: the other services
# would carry them for nothing.
PRELOADED = ("chassis.runtime", "chassis.messaging", "chassis.messaging.nats_bus")

_PR_SET_CHILD_SUBREAPER = 36
# The first answer waits for the imports, which take seconds on a busy machine.
_ANSWER_TIMEOUT_SECONDS = 30.0
_EXIT_GRACE_SECONDS = 5.0


class ForkedProcess:
    """A service forked by the fork server, waited for by the supervisor: the part of
    `subprocess.Popen` the supervisor uses."""

    def __init__(self, pid: int):
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:  # reaped elsewhere, or never became our child
                self.returncode = -signal.SIGKILL if not _exists(self.pid) else None
                return self.returncode
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self) -> int:
        while self.poll() is None:
            time.sleep(0.05)
        assert self.returncode is not None
        return self.returncode


class ForkServer:
    """The supervisor's side: starts the fork server and asks it for services."""

    def __init__(self, log_path: Path, env: dict[str, str]):
        become_subreaper()
        ours, theirs = socket.socketpair()
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as log:
            self._process = subprocess.Popen(
                [sys.executable, "-P", "-m", "agora_cli.forkserver", str(theirs.fileno())],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                pass_fds=[theirs.fileno()],
                process_group=0,
            )
        theirs.close()
        ours.settimeout(_ANSWER_TIMEOUT_SECONDS)
        self._socket: socket.socket | None = ours
        self._answers = ours.makefile("rb")
        self._one_at_a_time = threading.Lock()  # requests and answers must not interleave

    @property
    def pid(self) -> int:
        return self._process.pid

    def spawn(self, module: str, argv: list[str], env: dict[str, str], log_path: Path) -> ForkedProcess | None:
        """The forked service, or None if the fork server cannot give one (the caller then starts
        a fresh interpreter). Blocks until the fork server answers: a fork takes milliseconds,
        but the first answer waits for the fork server's imports."""
        request = {"module": module, "title": " ".join(argv), "env": env, "log": str(log_path)}
        with self._one_at_a_time:
            if self._socket is None:
                return None
            try:
                self._socket.sendall(json.dumps(request).encode() + b"\n")
                answer = json.loads(self._answers.readline() or b"{}")
            except (OSError, ValueError):
                self._hang_up()
                return None
        if "pid" not in answer:
            return None
        return ForkedProcess(answer["pid"])

    def close(self) -> None:
        """Stops the fork server (it exits when its socket closes); the services it forked stay."""
        with self._one_at_a_time:
            self._hang_up()
        try:
            self._process.wait(_EXIT_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()

    def _hang_up(self) -> None:
        if self._socket is not None:
            self._answers.close()
            self._socket.close()
            self._socket = None


def become_subreaper() -> None:
    """Orphaned descendants become this process's children, not init's."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _serve(channel: socket.socket) -> dict[str, Any] | None:
    """Answers requests until the supervisor hangs up. Returns, in a forked service only, the
    request that service must run."""
    requests = channel.makefile("rb")
    for line in requests:
        request = json.loads(line)
        try:
            pid, became = _fork_service(request)
        except OSError as error:
            channel.sendall(json.dumps({"error": str(error)}).encode() + b"\n")
            continue
        if became:
            requests.close()
            channel.close()
            return request
        channel.sendall(json.dumps({"pid": pid}).encode() + b"\n")
    return None


def _fork_service(request: dict[str, Any]) -> tuple[int, bool]:
    """Forks twice. Returns (service pid, False) in the fork server, (0, True) in the service."""
    read_end, write_end = os.pipe()
    middle = os.fork()
    if middle == 0:  # forks the service, reports its pid and exits, orphaning it
        os.close(read_end)
        try:
            service = os.fork()
            if service:
                os.write(write_end, str(service).encode())
        except BaseException:
            os._exit(1)
        if service:
            os._exit(0)
        # The service. From here on nothing may unwind into the fork server's loop.
        try:
            os.close(write_end)
            _become_service(request)
        except BaseException:
            traceback.print_exc()
            os._exit(1)
        return 0, True
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pid_pipe:
        written = pid_pipe.read()
    os.waitpid(middle, 0)
    if not written:
        raise OSError("the service could not be forked")
    return int(written), False


def _become_service(request: dict[str, Any]) -> None:
    """What `subprocess.Popen` with `process_group=0` and the log as output would have set up."""
    os.setpgid(0, 0)
    log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(null)
    os.close(log)
    # What `ps` and psutil show: the command line the service would have been started with.
    setproctitle.setproctitle(request["title"])
    os.environ.clear()
    os.environ.update(request["env"])
    del sys.argv[1:]
    gc.enable()


def main(channel_fd: int) -> None:
    # Collections would write to the imported objects' pages and unshare them from the services.
    gc.disable()
    for module in PRELOADED:
        importlib.import_module(module)
    gc.freeze()
    service = _serve(socket.socket(fileno=channel_fd))
    if service is not None:
        runpy.run_module(service["module"], run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main(int(sys.argv[1]))
