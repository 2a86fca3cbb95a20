"""The supervisor's control channel: a unix socket, one JSON request and one JSON answer a connection.

The detached supervisor serves it from its own event loop (`serve`); commands that must change
what it supervises (`agora restart`, `agora chaos stop|start`) call it (`request`) instead of
signalling processes behind its back. A request is `{"op": ..., "name": ..., "timeout": ...}`;
the answer `{"ok": true, ...}` comes once the operation is done, or `{"error": "one line"}`.
The socket is created 0600 in AGORA_HOME: only the city's own user may steer it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import socket
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from agora_cli.errors import AgoraError

Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]

_SOCKET_NAME = "supervisor.sock"
# sun_path holds 108 bytes; a deep AGORA_HOME gets its socket in the temp directory instead.
_MAX_PATH = 100


def socket_path(home_root: Path) -> Path:
    path = home_root / _SOCKET_NAME
    if len(os.fsencode(path)) <= _MAX_PATH:
        return path
    digest = hashlib.sha256(os.fsencode(home_root)).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"agora-{digest}.sock"


async def serve(path: Path, handle: Handler) -> asyncio.AbstractServer:
    """Answers requests on `path` with `handle` until the returned server is closed."""

    async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await reader.readline()
            try:
                request = json.loads(line)
                answer = await handle(request) if isinstance(request, dict) else {"error": "not a JSON object"}
            except ValueError:
                answer = {"error": "not a JSON request"}
            except AgoraError as error:
                answer = {"error": str(error), "details": error.details}
            writer.write((json.dumps(answer) + "\n").encode())
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client gave up (Ctrl-C, timeout); the operation itself went on
        finally:
            writer.close()

    remove(path)  # left by a supervisor that was killed
    previous = os.umask(0o177)
    try:
        return await asyncio.start_unix_server(connection, path)
    finally:
        os.umask(previous)


def request(path: str | Path, message: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Sends one request and waits up to `timeout` seconds for its answer (blocking).

    Raises AgoraError with the supervisor's own message when it answers with an error.
    """
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
        connection.settimeout(timeout)
        try:
            connection.connect(str(path))
            connection.sendall((json.dumps(message) + "\n").encode())
            received = b""
            while not received.endswith(b"\n"):
                chunk = connection.recv(65536)
                if not chunk:
                    break
                received += chunk
        except TimeoutError:
            raise AgoraError(f"the supervisor did not answer within {timeout:g} s") from None
        except OSError as error:
            raise AgoraError(f"cannot reach the supervisor at {path}: {error.strerror or error}") from None
    try:
        answer = json.loads(received)
    except ValueError:
        raise AgoraError("the supervisor closed the control connection without an answer") from None
    if "error" in answer:
        raise AgoraError(answer["error"], answer.get("details"))
    return answer


def remove(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()
