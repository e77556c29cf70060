"""Runs each service as its own process on the local stack, waits until it is ready, and watches it.

`start_services` starts every service as `python -m <module>` with the stack's endpoints (plus whatever
`environ` adds, e.g. the sandbox settings of `mailsync.devstack.product`) in its environment and waits
until each answers `GET /readyz` with 200. `watch` blocks until a process exits on its own. `stop_services`
stops them with SIGTERM first, so they finish in-flight work and commit. `mailsync-devstack run` (what
`make run` calls) drives these through `mailsync.devstack.product`; see `cli._run`. Service logs go to files
in the stack's run directory.
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
    from collections.abc import Callable, Mapping, Sequence

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


def start_services(
    stack: Stack,
    services: Sequence[ServiceSpec],
    *,
    timeout: float,
    environ: Callable[[ServiceSpec], Mapping[str, str]] | None = None,
) -> list[ManagedProcess]:
    """Start every service and wait until all are ready; stop the started ones and raise if one fails.

    Each service gets the stack's endpoints, its HTTP port, topic creation at start-up, and `environ(service)`
    on top when given.
    """
    for service in services:
        ensure_port_free(service.port, f"the {service.name} service")
    started: list[ManagedProcess] = []
    try:
        for service in services:
            child = {
                **os.environ,
                **stack.env(),
                "MAILSYNC_HTTP_PORT": str(service.port),
                "MAILSYNC_HTTP_HOST": LOOPBACK,
                "MAILSYNC_KAFKA_ENSURE_TOPICS": "true",
                **(environ(service) if environ is not None else {}),
            }
            started.append(
                ManagedProcess(
                    service.name,
                    [sys.executable, "-m", service.module],
                    log_path=stack.run_dir / f"{service.name}.log",
                    environ=child,
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
