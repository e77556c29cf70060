"""Errors raised while starting or stopping the local infrastructure.

Every error message is meant to be read by a developer at a terminal: it names the server, the missing
tool or the port, says what to do about it, and, for a server that failed, shows the tail of its log and
the log's path.
"""

from __future__ import annotations


class DevstackError(RuntimeError):
    """Base class of every error this package raises on purpose."""


class MissingToolError(DevstackError):
    """A program a server needs (``java``, ``mvn``, ``gcloud`` or the Pub/Sub emulator) was not found."""

    def __init__(self, tool: str, needed_for: str, hint: str) -> None:
        self.tool = tool
        super().__init__(f"{tool!r} is needed to start {needed_for} but was not found on PATH. {hint}")


class PortInUseError(DevstackError):
    """A port asked for explicitly is already bound by another process."""

    def __init__(self, port: int, needed_for: str) -> None:
        self.port = port
        super().__init__(
            f"port {port} on 127.0.0.1 is already in use, so {needed_for} cannot listen on it. "
            f"Stop the process holding it (see `ss -ltnp 'sport = :{port}'`) or choose another port."
        )


class ServerStartError(DevstackError):
    """A server exited during start, or did not become ready in time; the message holds its log tail."""


class StartCancelledError(ServerStartError):
    """A start was abandoned because another server of the same start failed, or on Ctrl-C."""
