"""Google's Pub/Sub emulator, run directly from the Google Cloud CLI installation.

The emulator is found, in order, at ``$MAILSYNC_PUBSUB_EMULATOR`` (path to the ``cloud-pubsub-emulator``
launcher), next to the ``gcloud`` found on PATH (``<sdk root>/platform/pubsub-emulator``), or under the SDK
root that ``gcloud info`` reports. The launcher ``exec``s java, so the process we start is the emulator
itself. Ready means ``GET /`` on its port answered ``Ok``. Clients find it through
``PUBSUB_EMULATOR_HOST=127.0.0.1:<port>`` and then use anonymous credentials; any project id works.
The emulator keeps everything in memory.
"""

from __future__ import annotations

import os
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

from mailsync.devstack.errors import MissingToolError
from mailsync.devstack.ports import LOOPBACK, ensure_port_free, free_port
from mailsync.devstack.process import JAVA_HINT, ManagedProcess, require_tool

if TYPE_CHECKING:
    import threading
    from collections.abc import Mapping

# Loopback must never go through an HTTP proxy configured in the environment.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))
_EMULATOR = Path("platform/pubsub-emulator/bin/cloud-pubsub-emulator")
_GCLOUD_HINT = (
    "Install the Google Cloud CLI and its emulator (`apt-get install google-cloud-cli "
    "google-cloud-cli-pubsub-emulator`, or `gcloud components install pubsub-emulator`), or point "
    "$MAILSYNC_PUBSUB_EMULATOR at the cloud-pubsub-emulator launcher."
)


def find_pubsub_emulator(environ: Mapping[str, str]) -> Path:
    """Return the emulator launcher; raise :class:`MissingToolError` naming gcloud or the emulator."""
    explicit = environ.get("MAILSYNC_PUBSUB_EMULATOR")
    if explicit:
        if not os.access(explicit, os.X_OK):
            raise MissingToolError(
                explicit, "the Pub/Sub emulator", "$MAILSYNC_PUBSUB_EMULATOR is not executable."
            )
        return Path(explicit)
    gcloud = require_tool("gcloud", needed_for="the Pub/Sub emulator", hint=_GCLOUD_HINT, environ=environ)
    beside = Path(gcloud).resolve().parent.parent / _EMULATOR
    if beside.is_file():
        return beside
    info = subprocess.run(  # noqa: S603 - fixed argv
        [gcloud, "info", "--format=value(installation.sdk_root)"],
        capture_output=True,
        text=True,
        env=dict(environ),
        check=False,
        timeout=60,
    )
    reported = Path(info.stdout.strip()) / _EMULATOR
    if info.returncode == 0 and reported.is_file():
        return reported
    raise MissingToolError("cloud-pubsub-emulator", "the Pub/Sub emulator", _GCLOUD_HINT)


def answers_http(host: str, *, timeout: float = 1.0) -> bool:
    """Return True if the emulator at ``host`` (``ip:port``) answers ``GET /`` with ``Ok``."""
    try:
        with _DIRECT.open(f"http://{host}/", timeout=timeout) as response:
            body: bytes = response.read()
    except (OSError, urllib.error.URLError):
        return False
    return body.strip() == b"Ok"


def start_pubsub_emulator(
    run_dir: Path,
    *,
    port: int | None,
    environ: Mapping[str, str],
    timeout: float,
    cancelled: threading.Event | None = None,
) -> tuple[ManagedProcess, str]:
    """Start the emulator; return it and its ``host:port`` for ``PUBSUB_EMULATOR_HOST``.

    Raises :class:`MissingToolError` (java, gcloud or the emulator), :class:`PortInUseError` for an explicit
    port that is taken, and :class:`ServerStartError` with the log tail if it exits or is not ready in time.
    """
    launcher = find_pubsub_emulator(environ)
    java = require_tool(
        "java",
        needed_for="the Pub/Sub emulator",
        hint=JAVA_HINT,
        environ=environ,
    )
    if port is not None:
        ensure_port_free(port, "the Pub/Sub emulator")
    chosen = port or free_port()
    emulator_dir = run_dir / "pubsub"
    emulator_dir.mkdir(parents=True, exist_ok=True)
    child_env = dict(environ)
    child_env["JAVA_HOME"] = str(Path(java).resolve().parent.parent)
    child_env["CLOUD_PUBSUB_EMULATOR_OPTS"] = "-Xms64m -Xmx256m -Djava.awt.headless=true"
    emulator = ManagedProcess(
        "pubsub emulator",
        [str(launcher), f"--host={LOOPBACK}", f"--port={chosen}"],
        log_path=emulator_dir / "pubsub.log",
        environ=child_env,
        cwd=emulator_dir,
    )
    host = f"{LOOPBACK}:{chosen}"
    emulator.wait_ready(lambda: answers_http(host), timeout=timeout, cancelled=cancelled)
    return emulator, host
