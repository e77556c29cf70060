"""``mailsync-devstack up``: prints eval-able endpoints, runs until a signal, then leaves nothing behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from typing import Any

import pytest
from pymongo import MongoClient

CLI = [sys.executable, "-m", "mailsync.devstack.cli"]


def _children_of(pid: int) -> list[int]:
    listing = subprocess.run(["ps", "-eo", "pid=,ppid="], capture_output=True, text=True, check=True)  # noqa: S607
    pairs = [line.split() for line in listing.stdout.splitlines()]
    return [int(child) for child, parent in pairs if int(parent) == pid]


@pytest.mark.mongodb
@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
def test_up_prints_exports_and_stops_everything_on_signal(stop_signal: signal.Signals) -> None:
    environ = {k: v for k, v in os.environ.items() if k != "MAILSYNC_MONGODB_URI"}
    cli = subprocess.Popen(  # noqa: S603 - fixed argv
        [*CLI, "up", "--only", "mongodb"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environ,
    )
    try:
        assert cli.stdout is not None
        export = cli.stdout.readline().strip()
        summary = cli.stdout.readline()
        assert export.startswith("export MAILSYNC_MONGODB_URI=mongodb://127.0.0.1:"), export
        assert summary.startswith("# started in ")
        servers = _children_of(cli.pid)
        assert len(servers) == 1

        uri = export.split("=", 1)[1]
        client: MongoClient[dict[str, Any]] = MongoClient(uri, serverSelectionTimeoutMS=5000)
        try:
            assert client.admin.command("ping")["ok"] == 1
        finally:
            client.close()

        cli.send_signal(stop_signal)
        assert cli.wait(timeout=30) == 0
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()
    assert cli.stderr is not None
    assert cli.stderr.read() == ""
    with pytest.raises(ProcessLookupError):
        os.kill(servers[0], 0)


def test_up_rejects_an_unknown_server_name() -> None:
    result = subprocess.run([*CLI, "up", "--only", "redis"], capture_output=True, text=True, check=False)  # noqa: S603
    assert result.returncode == 2
    assert "choose from kafka, mongodb, pubsub" in result.stderr
