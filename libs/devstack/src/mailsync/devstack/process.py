"""Child processes of the stack: spawned in their own session, logged to a file, stopped by group.

Contract:

* Each server runs in a new session (``start_new_session=True``), so its process group contains the
  server and any helpers it forks, and a Ctrl-C on the developer's terminal reaches the parent only: the
  parent then stops the children in order.
* ``stop`` sends ``SIGTERM`` to the whole group, waits ``grace`` seconds, then sends ``SIGKILL``; it is
  idempotent and never raises for a process that is already gone.
* Every live :class:`ManagedProcess` is stopped by an ``atexit`` hook as a backstop, so an interpreter that
  exits normally (or on an unhandled exception) leaves no server behind. A parent killed with ``SIGKILL``
  cannot clean up: its children then keep running until killed by hand (``ps -eo pid,pgid,args``).
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import shutil
import signal
import subprocess
import threading
import time
from typing import TYPE_CHECKING

from mailsync.devstack.errors import MissingToolError, ServerStartError, StartCancelledError

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from pathlib import Path

logger = logging.getLogger(__name__)

JAVA_HINT = (
    "Install a Java 17+ runtime (e.g. `apt-get install openjdk-17-jre-headless`) and put `java` on PATH."
)

_live: set[ManagedProcess] = set()
_live_lock = threading.Lock()


def require_tool(tool: str, *, needed_for: str, hint: str, environ: Mapping[str, str]) -> str:
    """Return the path of ``tool`` on ``environ['PATH']``; raise :class:`MissingToolError` if absent."""
    found = shutil.which(tool, path=environ.get("PATH", os.defpath))
    if found is None:
        raise MissingToolError(tool, needed_for, hint)
    return found


def log_tail(path: Path, lines: int = 40) -> str:
    """Return the last ``lines`` lines of a log file, or a note that it is missing."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])


class ManagedProcess:
    """One server process, its log file and its process group."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        log_path: Path,
        environ: Mapping[str, str],
        cwd: Path | None = None,
    ) -> None:
        """Spawn ``argv`` now, in a new session, with stdout and stderr appended to ``log_path``.

        Raises ``OSError`` if the program cannot be executed.
        """
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as log:
            self._popen = subprocess.Popen(  # noqa: S603 - argv is built by this package, not from input
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(environ),
                cwd=cwd,
                start_new_session=True,
            )
        self.pid = self._popen.pid
        with _live_lock:
            _live.add(self)
        logger.debug("started %s (pid %d): %s", name, self.pid, " ".join(self.argv))

    def exit_code(self) -> int | None:
        """Return the exit code if the process has exited, else ``None``."""
        return self._popen.poll()

    def describe_failure(self, what: str) -> str:
        """Return ``what`` followed by the log path and its tail, for error messages."""
        tail = log_tail(self.log_path)
        return f"{self.name} {what}. Log: {self.log_path}\n--- last lines of the log ---\n{tail}"

    def wait_ready(
        self,
        is_ready: Callable[[], bool],
        *,
        timeout: float,
        cancelled: threading.Event | None = None,
        interval: float = 0.1,
    ) -> None:
        """Poll ``is_ready`` until it returns True.

        Raises :class:`ServerStartError` (after stopping the process) if the process exits first, if
        ``timeout`` seconds pass, or if ``cancelled`` is set. ``is_ready`` must not raise for a server that
        is still starting; it should return False instead.
        """
        deadline = time.monotonic() + timeout
        while True:
            code = self.exit_code()
            if code is not None:
                self.stop()
                raise ServerStartError(self.describe_failure(f"exited with code {code} during start"))
            if is_ready():
                return
            if cancelled is not None and cancelled.is_set():
                self.stop()
                raise StartCancelledError(f"start of {self.name} was cancelled")
            if time.monotonic() > deadline:
                self.stop()
                raise ServerStartError(self.describe_failure(f"was not ready after {timeout:g} s"))
            time.sleep(interval)

    def terminate(self) -> None:
        """Send SIGTERM to the process group without waiting; ``stop`` then waits. Idempotent."""
        if self._popen.poll() is None:
            self._signal_group(signal.SIGTERM)

    def stop(self, grace: float = 10.0) -> None:
        """Stop the process group: SIGTERM, then SIGKILL after ``grace`` seconds. Idempotent."""
        with _live_lock:
            _live.discard(self)
        if self._popen.poll() is None:
            self._signal_group(signal.SIGTERM)
            try:
                self._popen.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                logger.warning(
                    "%s (pid %d) ignored SIGTERM for %.0f s; killing it", self.name, self.pid, grace
                )
                self._signal_group(signal.SIGKILL)
                self._popen.wait()
        # Helpers forked by the server share its group and may outlive the leader.
        self._signal_group(signal.SIGKILL)

    def _signal_group(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)


def stop_all_live() -> None:
    """Stop every process started by this interpreter that is still running (the ``atexit`` backstop)."""
    with _live_lock:
        remaining = list(_live)
    for process in remaining:
        process.stop(grace=5.0)


atexit.register(stop_all_live)
