"""Handing a port over from an old process to its replacement without a reset connection.

During a rolling restart the old and the new process both listen on each port of the instance
(SO_REUSEPORT), and the kernel spreads new connections between them by a hash. When the old
process then closes its listener, a connection the kernel had already queued on it but the
process had not accepted yet is reset: a failed request for whoever opened it (a gateway
reconnecting to catalog after the GOAWAY, a browser). So before the old process is told to stop,
the supervisor attaches a one-instruction classic BPF program to each port's SO_REUSEPORT group,
"return 1": every new connection goes to the group's second socket, which is the newcomer's (a
group keeps its sockets in the order they started listening; the old one, which has been there
longer, is first). Nothing new reaches the old listener, which closes with an empty queue. Once
the old process is gone, the program is detached again.

The supervisor reaches the listening sockets, which live in its children, with pidfd_getfd(2)
(Linux 5.6+); a copy is held only while the option is set. Where that is not possible the
handover still happens, only without the steering.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import socket
import struct
from collections.abc import Iterator

import psutil

_SYS_PIDFD_GETFD = 438  # x86-64 and arm64 alike
_SO_ATTACH_REUSEPORT_CBPF = 51
_SO_DETACH_REUSEPORT_BPF = 68
_BPF_RET_K = 0x06  # BPF_RET | BPF_K: return the constant
_SECOND_SOCKET = struct.pack("=HBBI", _BPF_RET_K, 0, 0, 1)

_libc = ctypes.CDLL(None, use_errno=True)


def steer_to_newcomer(old_pid: int, ports: list[int]) -> list[int]:
    """Sends every new connection on `ports` to the socket that joined each group after the old
    process's (the newcomer's). Returns the ports it could steer."""
    program = ctypes.create_string_buffer(_SECOND_SOCKET, len(_SECOND_SOCKET))
    fprog = struct.pack("@HP", 1, ctypes.addressof(program))
    steered = []
    for port in ports:
        with contextlib.suppress(OSError, psutil.Error), _listener(old_pid, port) as listener:
            listener.setsockopt(socket.SOL_SOCKET, _SO_ATTACH_REUSEPORT_CBPF, fprog)
            steered.append(port)
    return steered


def release(new_pid: int, ports: list[int]) -> None:
    """Detaches the steering program once the new process is alone on `ports`."""
    for port in ports:
        with contextlib.suppress(OSError, psutil.Error), _listener(new_pid, port) as listener:
            listener.setsockopt(socket.SOL_SOCKET, _SO_DETACH_REUSEPORT_BPF, 0)


@contextlib.contextmanager
def _listener(pid: int, port: int) -> Iterator[socket.socket]:
    """A copy of the socket on which `pid` listens on `port`, closed on exit: a copy kept would
    keep the listener alive after its process closed it."""
    target = next(
        (
            connection.fd
            for connection in psutil.Process(pid).net_connections(kind="tcp")
            if connection.status == psutil.CONN_LISTEN and connection.laddr and connection.laddr[1] == port
        ),
        None,
    )
    if target is None:
        raise OSError(f"process {pid} does not listen on port {port}")
    pidfd = os.pidfd_open(pid)
    try:
        copy = _libc.syscall(_SYS_PIDFD_GETFD, pidfd, target, 0)
        if copy < 0:
            error = ctypes.get_errno()
            raise OSError(error, os.strerror(error))
    finally:
        os.close(pidfd)
    listener = socket.socket(fileno=copy)
    try:
        yield listener
    finally:
        listener.close()
