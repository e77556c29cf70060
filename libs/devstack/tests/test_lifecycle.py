"""The process layer: clean stops, clear errors for taken ports, missing tools and crashing servers."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from mailsync.devstack.errors import MissingToolError, PortInUseError, ServerStartError
from mailsync.devstack.process import ManagedProcess
from mailsync.devstack.stack import Component, Stack, StackEndpoints


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _processes_mentioning(text: str) -> list[str]:
    listing = subprocess.run(["ps", "-ww", "-eo", "pid,args"], capture_output=True, text=True, check=True)  # noqa: S607
    return [line for line in listing.stdout.splitlines() if text in line and "ps -eo" not in line]


@pytest.mark.mongodb
def test_stop_leaves_no_process_and_no_run_dir_behind() -> None:
    stack = Stack(environ=dict(os.environ, MAILSYNC_MONGODB_URI=""))
    try:
        stack.start([Component.MONGODB])
        pids = stack.pids()
        run_dir = stack.run_dir
        assert len(pids) == 1
        assert all(_alive(pid) for pid in pids)
        assert _processes_mentioning(str(run_dir))
    finally:
        stack.stop()

    assert not any(_alive(pid) for pid in pids)
    assert _processes_mentioning(str(run_dir)) == []
    assert not run_dir.exists()
    stack.stop()  # idempotent


@pytest.mark.mongodb
def test_interpreter_exit_stops_a_forgotten_stack() -> None:
    script = (
        "from mailsync.devstack.stack import Stack\n"
        "stack = Stack(environ={'PATH': '/usr/bin:/bin'})\n"
        "stack.start(['mongodb'])\n"
        "print(stack.pids()[0], stack.run_dir, flush=True)\n"
    )
    result = subprocess.run(  # noqa: S603 - fixed argv
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    pid, run_dir = result.stdout.split()
    assert result.stderr == ""
    assert not _alive(int(pid))
    assert _processes_mentioning(run_dir) == []
    assert not Path(run_dir).exists()


def test_endpoint_from_environment_is_used_and_nothing_starts() -> None:
    stack = Stack(environ={"MAILSYNC_MONGODB_URI": "mongodb://db.example:27017/", "PATH": ""})
    assert stack.start([Component.MONGODB]) == {Component.MONGODB: 0.0}
    assert stack.mongodb_uri == "mongodb://db.example:27017/"
    assert stack.origin(Component.MONGODB) == "environment"
    assert stack.pids() == []
    stack.stop()


def test_endpoints_env_has_exactly_the_three_variables() -> None:
    endpoints = StackEndpoints("127.0.0.1:9092", "mongodb://127.0.0.1:27017/", "127.0.0.1:8085")
    assert endpoints.env() == {
        "MAILSYNC_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9092",
        "MAILSYNC_MONGODB_URI": "mongodb://127.0.0.1:27017/",
        "PUBSUB_EMULATOR_HOST": "127.0.0.1:8085",
    }


@pytest.mark.mongodb
def test_taken_port_is_reported_with_its_number() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        stack = Stack(environ=dict(os.environ, MAILSYNC_MONGODB_URI=""), ports={Component.MONGODB: port})
        with pytest.raises(PortInUseError, match=f"port {port} .* already in use") as caught:
            stack.start([Component.MONGODB])
        run_dir = stack.run_dir
        stack.stop()
    assert caught.value.port == port
    assert stack.pids() == []
    assert not run_dir.exists()


@pytest.mark.parametrize("component", [Component.KAFKA, Component.PUBSUB])
def test_missing_java_is_named(component: Component, tmp_path: Path) -> None:
    # gcloud stays reachable through a PATH entry of its own, so only java is missing.
    tools = tmp_path / "bin"
    tools.mkdir()
    gcloud = subprocess.run(["which", "gcloud"], capture_output=True, text=True, check=False).stdout.strip()  # noqa: S607
    if gcloud:
        (tools / "gcloud").symlink_to(gcloud)
    stack = Stack(environ={"PATH": str(tools)}, cache_root=tmp_path / "cache")
    with pytest.raises(MissingToolError, match="'java' is needed") as caught:
        stack.start([component])
    assert caught.value.tool == "java"
    assert "Install a Java 17+ runtime" in str(caught.value)
    stack.stop()


def test_server_exiting_during_start_reports_its_log_tail(tmp_path: Path) -> None:
    process = ManagedProcess(
        "doomed",
        [sys.executable, "-c", "import sys; print('bind failed: address in use', flush=True); sys.exit(3)"],
        log_path=tmp_path / "doomed.log",
        environ=os.environ,
    )
    with pytest.raises(ServerStartError) as caught:
        process.wait_ready(lambda: False, timeout=30)
    message = str(caught.value)
    assert "doomed exited with code 3 during start" in message
    assert "bind failed: address in use" in message
    assert str(tmp_path / "doomed.log") in message


def test_server_not_ready_in_time_is_stopped(tmp_path: Path) -> None:
    process = ManagedProcess(
        "sleeper",
        [sys.executable, "-c", "import time; time.sleep(60)"],
        log_path=tmp_path / "s.log",
        environ=os.environ,
    )
    with pytest.raises(ServerStartError, match=r"sleeper was not ready after 0\.5 s"):
        process.wait_ready(lambda: False, timeout=0.5)
    assert process.exit_code() is not None
    assert not _alive(process.pid)
