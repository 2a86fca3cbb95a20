"""The rolling restart's handover: once steered, new connections reach only the newcomer."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest

from agora_cli import handover
from tests.cli.conftest import free_port, wait_for

# Listens on the port with SO_REUSEPORT and answers each connection with its own pid.
SERVER = """
import os, socket, sys
listener = socket.create_server(("127.0.0.1", int(sys.argv[1])), reuse_port=True)
print("listening", flush=True)
while True:
    connection, _ = listener.accept()
    connection.sendall(str(os.getpid()).encode())
    connection.close()
"""


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture
def servers(port: int) -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    for _ in range(2):  # one after the other: the group's order is the order they listen
        server = subprocess.Popen([sys.executable, "-c", SERVER, str(port)], stdout=subprocess.PIPE, text=True)
        assert server.stdout and server.stdout.readline().strip() == "listening"
        started.append(server)
    yield started
    for server in started:
        server.kill()
        server.wait()


def answered_by(port: int) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
        return int(connection.recv(64))


def test_once_steered_every_new_connection_goes_to_the_newcomer(
    port: int, servers: list[subprocess.Popen[str]]
) -> None:
    old, new = servers
    assert wait_for(lambda: answered_by(port) == old.pid, timeout=5)  # the kernel spreads them

    assert handover.steer_to_newcomer(old.pid, [port]) == [port]

    assert {answered_by(port) for _ in range(40)} == {new.pid}
    old.kill()
    old.wait()
    handover.release(new.pid, [port])
    assert {answered_by(port) for _ in range(5)} == {new.pid}
