"""Runs the product locally: the stack plus each service as its own process, until Ctrl-C.

`mailsync-devstack run` (what `make run` calls) starts the local stack, then every service as
`python -m <module>` with the stack's endpoints in its environment, waits until each answers `GET /readyz`
with 200, prints where to look, and watches them. Ctrl-C (or SIGTERM) stops the services first with SIGTERM,
so they finish in-flight work and commit, then the stack (see `cli._run`). A service that exits on its own
stops everything with status 1 and the tail of its log. Service logs go to files in the stack's run
directory.
"""

from __future__ import annotations

import functools
import os
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import TYPE_CHECKING, TextIO

from mailsync.devstack.ports import LOOPBACK, ensure_port_free
from mailsync.devstack.process import ManagedProcess

if TYPE_CHECKING:
    from collections.abc import Sequence

    from mailsync.devstack.stack import Stack


@dataclass(frozen=True)
class ServiceSpec:
    """A service to run: its name, the module `python -m` runs, and its HTTP port."""

    name: str
    module: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"


SERVICES: tuple[ServiceSpec, ...] = (
    ServiceSpec("ingest-gmail", "mailsync.ingest_gmail", 8081),
    ServiceSpec("ingest-outlook", "mailsync.ingest_outlook", 8082),
    ServiceSpec("router", "mailsync.router", 8083),
    ServiceSpec("sender", "mailsync.sender", 8084),
)


def is_ready(url: str) -> bool:
    """True when `GET url` answers 200 within a second."""
    try:
        with urllib.request.urlopen(url, timeout=1.0) as response:  # noqa: S310 - loopback http URL built here
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def start_services(stack: Stack, services: Sequence[ServiceSpec], *, timeout: float) -> list[ManagedProcess]:
    """Start every service and wait until all are ready; stop the started ones and raise if one fails."""
    for service in services:
        ensure_port_free(service.port, f"the {service.name} service")
    started: list[ManagedProcess] = []
    try:
        for service in services:
            environ = {
                **os.environ,
                **stack.env(),
                "MAILSYNC_HTTP_PORT": str(service.port),
                "MAILSYNC_HTTP_HOST": LOOPBACK,
                "MAILSYNC_KAFKA_ENSURE_TOPICS": "true",
            }
            started.append(
                ManagedProcess(
                    service.name,
                    [sys.executable, "-m", service.module],
                    log_path=stack.run_dir / f"{service.name}.log",
                    environ=environ,
                )
            )
        for service, process in zip(services, started, strict=True):
            process.wait_ready(functools.partial(is_ready, f"{service.url}/readyz"), timeout=timeout)
    except BaseException:
        stop_services(started)
        raise
    return started


def stop_services(processes: Sequence[ManagedProcess]) -> None:
    """SIGTERM every service (they drain and commit), then wait; reverse start order."""
    for process in reversed(processes):
        process.stop(grace=20.0)


def watch(processes: Sequence[ManagedProcess], err: TextIO) -> int:
    """Block until a service exits on its own; then write its log tail to `err` and return 1.

    Stopping on Ctrl-C is the caller's: its signal handler interrupts this loop.
    """
    while True:
        time.sleep(1.0)
        for process in processes:
            code = process.exit_code()
            if code is not None:
                err.write(process.describe_failure(f"exited unexpectedly with code {code}") + "\n")
                return 1


def describe(stack: Stack, services: Sequence[ServiceSpec], seconds: float) -> str:
    """The guide printed once everything is ready."""
    lines = [f"mailsync is running ({seconds:.1f} s to ready). Ctrl-C stops everything.", ""]
    lines += [
        f"  {s.name:<15} {s.url}  (/healthz /readyz /metrics)  log: {stack.run_dir / s.name}.log"
        for s in services
    ]
    lines += ["", "  stack:"] + [f"    {name}={value}" for name, value in stack.env().items()]
    return "\n".join(lines) + "\n"
