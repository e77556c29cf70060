"""Loopback ports for the local servers.

``free_port`` asks the kernel for an unused port and never hands out the same number twice in one
process, so servers started concurrently do not collide with each other. Another program can still take
the port between the check and the server's ``bind``; the server then exits during start and the caller
reports a :class:`~mailsync.devstack.errors.ServerStartError` with the server's log.
"""

from __future__ import annotations

import socket
import threading

from mailsync.devstack.errors import PortInUseError

LOOPBACK = "127.0.0.1"

_handed_out: set[int] = set()
_lock = threading.Lock()


def free_port() -> int:
    """Return a loopback TCP port that is free now and was not returned before by this process."""
    with _lock:
        for _ in range(100):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.bind((LOOPBACK, 0))
                port: int = sock.getsockname()[1]
            if port not in _handed_out:
                _handed_out.add(port)
                return port
    raise OSError("the kernel kept returning ports already handed out; no free loopback port found")


def ensure_port_free(port: int, needed_for: str) -> None:
    """Raise :class:`PortInUseError` if something already listens on ``127.0.0.1:port``.

    The probe sets ``SO_REUSEADDR`` like the servers do, so a port merely in ``TIME_WAIT`` counts as free.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((LOOPBACK, port))
        except OSError as exc:
            raise PortInUseError(port, needed_for) from exc
