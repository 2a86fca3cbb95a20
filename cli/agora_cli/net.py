"""Ports and tiny network probes: enough to pick ports and tell whether a server answers."""

from __future__ import annotations

import asyncio
import errno
import socket
from urllib.parse import quote, urlsplit

import psutil

from agora_cli.errors import AgoraError


class PortPicker:
    """Free ports on a host, never the same one twice in one run."""

    def __init__(self, host: str):
        self._host = host
        self._given: set[int] = set()

    def pick(self) -> int:
        while True:
            with socket.socket() as probe:
                probe.bind((self._host, 0))
                port = probe.getsockname()[1]
            if port not in self._given:
                self._given.add(port)
                return port


def ensure_port_free(host: str, port: int, what: str) -> None:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise AgoraError(f"port {port} ({what}) is already in use on {host}") from None
            raise AgoraError(f"cannot bind {host}:{port} ({what}): {error.strerror}") from None


def address_of(url: str, default_port: int) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or default_port


def with_login(url: str, user: str, password: str) -> str:
    parts = urlsplit(url)
    return parts._replace(netloc=f"{quote(user, safe='')}:{quote(password, safe='')}@{parts.netloc}").geturl()


def redact(url: str) -> str:
    """The URL without its password, fit for logs and tables."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", "@", 1)
    return parts._replace(netloc=netloc).geturl()


async def tcp_answers(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except (OSError, TimeoutError):
        return False
    writer.close()
    try:
        await writer.wait_closed()
    except OSError:
        pass
    return True


async def http_status(host: str, port: int, path: str, timeout: float = 1.0) -> int | None:
    """Status code of `GET path`, or None when nothing answers in time."""
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host, port)
            try:
                writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n".encode())
                await writer.drain()
                status_line = await reader.readline()
            finally:
                writer.close()
    except (OSError, TimeoutError):
        return None
    parts = status_line.split()
    return int(parts[1]) if len(parts) >= 2 and parts[1].isdigit() else None


async def http_get(host: str, port: int, path: str, timeout: float = 1.0, limit: int = 16 << 20) -> bytes | None:
    """The body of `GET path` when it answers 200 within `timeout`, else None.

    Asked as HTTP/1.0, so the server closes the connection after the body and never chunks it:
    the body is whatever follows the headers, up to `limit` bytes.
    """
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host, port)
            try:
                writer.write(f"GET {path} HTTP/1.0\r\nHost: {host}:{port}\r\n\r\n".encode())
                await writer.drain()
                answer = await reader.read(limit + 1)
                while len(answer) <= limit and (chunk := await reader.read(limit + 1 - len(answer))):
                    answer += chunk
            finally:
                writer.close()
    except (OSError, TimeoutError):
        return None
    head, separator, body = answer.partition(b"\r\n\r\n")
    parts = head.split(b"\r\n", 1)[0].split()
    if not separator or len(answer) > limit or len(parts) < 2 or parts[1] != b"200":
        return None
    return body


async def answers_from(host: str, port: int, path: str, pid: int, timeout: float = 1.0) -> bool:
    """True if `GET path` answered 200 from the process `pid` itself.

    Several processes may listen on one port (SO_REUSEPORT, during a rolling restart) and the
    kernel spreads connections among them; the connection's server end tells which one took it.
    The request keeps the connection open, so that end still exists when it is looked up.
    """
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host, port)
            try:
                client_port = writer.get_extra_info("sockname")[1]
                writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
                await writer.drain()
                parts = (await reader.readline()).split()
                if len(parts) < 2 or parts[1] != b"200":
                    return False
                return _owns(pid, port, client_port)
            finally:
                writer.close()
    except (OSError, TimeoutError):
        return False


def _owns(pid: int, port: int, client_port: int) -> bool:
    try:
        connections = psutil.Process(pid).net_connections(kind="tcp")
    except psutil.Error:
        return False
    return any(
        connection.laddr and connection.raddr and connection.laddr[1] == port and connection.raddr[1] == client_port
        for connection in connections
    )


async def wait_until(probe, timeout: float, interval: float = 0.05) -> bool:
    """Calls the async `probe` until it returns true or `timeout` seconds pass."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        if await probe():
            return True
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(interval)
