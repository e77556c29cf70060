"""Each service installed alone, exactly as its container image installs it, imports and runs.

The image build (deploy/docker/service.Dockerfile) runs `uv sync --frozen --no-dev --no-editable --package
mailsync-<service>`: the locked versions of that one package and its dependencies, no dev group, no other
workspace member. The same command here builds a clean virtual environment per service, which then has to
hold nothing else, start its console script on the real Kafka and MongoDB until `/readyz` says ready, and
exit 0 on SIGTERM. A dependency that only another member (or the dev group) pulled into the workspace
environment fails here, not in production.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from mailsync.devstack.ports import free_port

pytestmark = [pytest.mark.kafka, pytest.mark.mongodb]

REPO = Path(__file__).resolve().parents[2]
SERVICES = ["ingest-gmail", "ingest-outlook", "router", "sender"]
OTHER_PACKAGES = ["mailsync.devstack", "mailsync.gmail_sandbox", "mailsync.graph_sandbox", "pytest"]


def uv_binary() -> str:
    found = shutil.which("uv") or str(REPO / ".tools" / "bin" / "uv")
    if not Path(found).exists():
        pytest.fail("uv is needed to build the service-only environments (make bootstrap installs it)")
    return found


def clean_env(**extra: str) -> dict[str, str]:
    """The caller's environment without anything that points Python at the workspace environment."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "UV_PROJECT_ENVIRONMENT"}
        and not key.startswith("MAILSYNC_")
    }
    return {**env, **extra}


def install_service_only(service: str, venv: Path) -> None:
    """The image's install step, into `venv`."""
    result = subprocess.run(  # noqa: S603 - uv with fixed arguments
        [
            uv_binary(),
            "sync",
            "--frozen",
            "--no-dev",
            "--no-editable",
            "--package",
            f"mailsync-{service}",
            "--python",
            sys.executable,
        ],
        cwd=REPO,
        env=clean_env(UV_PROJECT_ENVIRONMENT=str(venv)),
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]


def module_present(venv: Path, module: str) -> bool:
    probe = f"import importlib.util, sys; sys.exit(0 if importlib.util.find_spec({module!r}) else 3)"
    code = subprocess.run(  # noqa: S603 - the environment's own interpreter
        [str(venv / "bin" / "python"), "-c", probe], env=clean_env(), check=False
    ).returncode
    assert code in {0, 3}, f"probing {module} failed with {code}"
    return code == 0


def wait_ready(url: str, process: subprocess.Popen[str], within: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < within:
        if process.poll() is not None:
            pytest.fail(f"service exited with {process.returncode} before it was ready")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 - loopback URL built here
                if response.status == 200:
                    return time.monotonic() - started
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    pytest.fail(f"{url} not ready within {within} s")


@pytest.mark.parametrize("service", SERVICES)
def test_service_only_install_imports_starts_ready_and_stops_cleanly(
    service: str,
    tmp_path: Path,
    kafka_bootstrap_servers: str,
    mongodb_uri: str,
    unique_name: Callable[[str], str],
) -> None:
    venv = tmp_path / "venv"
    began = time.monotonic()
    install_service_only(service, venv)
    install_seconds = time.monotonic() - began

    module = f"mailsync.{service.replace('-', '_')}"
    assert module_present(venv, f"{module}.main")
    assert module_present(venv, "mailsync.common")
    others = [
        m for m in OTHER_PACKAGES + [f"mailsync.{s.replace('-', '_')}" for s in SERVICES] if m != module
    ]
    assert [m for m in others if module_present(venv, m)] == []

    port = free_port()
    env = clean_env(
        MAILSYNC_KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap_servers,
        MAILSYNC_MONGODB_URI=mongodb_uri,
        MAILSYNC_KAFKA_TOPIC_PREFIX=unique_name("t") + ".",
        MAILSYNC_MONGODB_DATABASE=unique_name("db"),
        MAILSYNC_KAFKA_ENSURE_TOPICS="true",
        MAILSYNC_HTTP_PORT=str(port),
    )
    process = subprocess.Popen(  # noqa: S603 - the console script the image runs
        [str(venv / "bin" / f"mailsync-{service}")], env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        ready_seconds = wait_ready(f"http://127.0.0.1:{port}/readyz", process, within=60)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, stderr[-3000:]
    sys.stderr.write(f"{service}: install {install_seconds:.1f} s, ready {ready_seconds:.1f} s\n")
