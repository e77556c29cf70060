"""The local stack: Kafka, the MongoDB-wire server and the Pub/Sub emulator, started together.

Contract:

* ``Stack.start(components)`` starts the requested servers concurrently (total time is about that of the
  slowest one) and is idempotent: servers already running or provided are left alone, so a test session
  can start Kafka first and the rest later.
* **Endpoints from the environment win.** If ``MAILSYNC_KAFKA_BOOTSTRAP_SERVERS``, ``MAILSYNC_MONGODB_URI``
  or ``PUBSUB_EMULATOR_HOST`` is set (non-empty), that server is not started and the given endpoint is used
  unchanged (a real mongod or Atlas, a broker from testcontainers, ...).
* With ``MAILSYNC_DEVSTACK=testcontainers``, servers not provided by the environment are started as Docker
  containers (see :mod:`mailsync.devstack.containers`) when the ``testcontainers`` package and a Docker
  engine are available; otherwise as local processes, with a warning.
* If any server fails to start, the servers this call started are stopped and the first error is raised;
  if a server ran and failed, the run directory (holding every log) is kept and named in the message.
  ``stop`` stops everything and removes the run directory (data and logs); it is idempotent. Stacks not
  stopped by their owner are stopped at interpreter exit.
"""

from __future__ import annotations

import atexit
import enum
import logging
import os
import shutil
import tempfile
import threading
import time
import weakref
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Self

from mailsync.devstack import containers
from mailsync.devstack.errors import DevstackError, ServerStartError, StartCancelledError
from mailsync.devstack.kafka import KafkaSettings, start_kafka
from mailsync.devstack.mongodb import start_mongodb
from mailsync.devstack.pubsub import start_pubsub_emulator

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping
    from types import TracebackType

    from mailsync.devstack.process import ManagedProcess

logger = logging.getLogger(__name__)


class Component(enum.StrEnum):
    """A server of the stack; the value is its name on the command line."""

    KAFKA = "kafka"
    MONGODB = "mongodb"
    PUBSUB = "pubsub"


ALL_COMPONENTS: tuple[Component, ...] = tuple(Component)

ENV_VARS: dict[Component, str] = {
    Component.KAFKA: "MAILSYNC_KAFKA_BOOTSTRAP_SERVERS",
    Component.MONGODB: "MAILSYNC_MONGODB_URI",
    Component.PUBSUB: "PUBSUB_EMULATOR_HOST",
}


@dataclass(frozen=True)
class StackEndpoints:
    """Where clients reach the three servers."""

    kafka_bootstrap_servers: str
    mongodb_uri: str
    pubsub_emulator_host: str

    def env(self) -> dict[str, str]:
        """Return exactly the three variables services read, for a subprocess environment."""
        return {
            ENV_VARS[Component.KAFKA]: self.kafka_bootstrap_servers,
            ENV_VARS[Component.MONGODB]: self.mongodb_uri,
            ENV_VARS[Component.PUBSUB]: self.pubsub_emulator_host,
        }


@dataclass
class _Running:
    endpoint: str
    origin: str  # "process", "environment" or "container"
    seconds: float
    stop: Callable[[], None] | None = None
    processes: list[ManagedProcess] = field(default_factory=list)


class Stack:
    """A set of local servers with one lifecycle; use as a context manager or call ``start``/``stop``."""

    def __init__(
        self,
        *,
        environ: Mapping[str, str] | None = None,
        run_dir: Path | None = None,
        cache_root: Path | None = None,
        ports: Mapping[Component, int] | None = None,
        kafka: KafkaSettings | None = None,
        start_timeout: float = 120.0,
    ) -> None:
        """Configure the stack; nothing is started and nothing is created on disk here.

        ``environ`` (default: ``os.environ``, read at ``start``) supplies both the endpoint overrides and
        the child processes' environment, including the PATH used to find java, mvn and gcloud.
        ``ports`` pins a server's port (checked before start); other servers get free loopback ports.
        """
        self._environ = environ
        self._run_dir = run_dir
        self._owns_run_dir = run_dir is None
        self._cache_root = cache_root
        self._ports = dict(ports or {})
        self._kafka = kafka or KafkaSettings()
        self._timeout = start_timeout
        self._running: dict[Component, _Running] = {}
        self._keep_run_dir = False
        self._lock = threading.Lock()
        _unstopped.add(self)

    @property
    def run_dir(self) -> Path:
        """The directory holding the servers' data, configuration and logs (created on first use)."""
        if self._run_dir is None:
            self._run_dir = Path(tempfile.mkdtemp(prefix="mailsync-devstack-"))
        return self._run_dir

    def start(self, components: Iterable[Component | str] = ALL_COMPONENTS) -> dict[Component, float]:
        """Start the given servers that are not running yet, concurrently; return their start times (s).

        ``components`` are :class:`Component` members or their names (``"kafka"``); an unknown name
        raises ``ValueError``.

        Raises :class:`~mailsync.devstack.errors.DevstackError` subclasses (missing tool, taken port, a
        server that exited or timed out) after stopping what this call started. On ``KeyboardInterrupt``
        the servers being started are stopped too before the interrupt propagates.
        """
        with self._lock:
            environ = dict(os.environ if self._environ is None else self._environ)
            wanted = [c for c in dict.fromkeys(map(Component, components)) if c not in self._running]
            started: dict[Component, float] = {}
            to_launch: list[Component] = []
            for component in wanted:
                provided = environ.get(ENV_VARS[component], "")
                if provided:
                    self._running[component] = _Running(provided, "environment", 0.0)
                    started[component] = 0.0
                else:
                    to_launch.append(component)
            if to_launch:
                started.update(self._launch(to_launch, environ))
            return started

    def _launch(self, components: list[Component], environ: dict[str, str]) -> dict[Component, float]:
        if containers.requested(environ):
            if containers.available():
                return self._launch_containers(components)
            logger.warning(
                "MAILSYNC_DEVSTACK=testcontainers, but the testcontainers package or a Docker engine is "
                "missing; starting local processes instead"
            )
        run_dir = self.run_dir  # created here, once, before the worker threads need it
        cancelled = threading.Event()
        results: dict[Component, _Running] = {}
        errors: list[BaseException] = []
        with ThreadPoolExecutor(max_workers=len(components), thread_name_prefix="devstack") as pool:
            futures = {
                pool.submit(self._start_process, c, run_dir, environ, cancelled): c for c in components
            }
            try:
                wait(futures, return_when=FIRST_EXCEPTION)
            finally:
                # On an error or a Ctrl-C, the others stop waiting and stop their server.
                cancelled.set()
                for future, component in futures.items():
                    exc = future.exception()
                    if exc is None:
                        results[component] = future.result()
                    elif not isinstance(exc, StartCancelledError):
                        errors.append(exc)
                if errors or len(results) < len(components):
                    for running in results.values():
                        for process in running.processes:
                            process.stop()
        # Logs are worth keeping only when a server ran and failed; they are named in the error.
        if any(isinstance(exc, ServerStartError) for exc in errors):
            self._keep_run_dir = True
        if errors:
            raise errors[0]
        self._running.update(results)
        return {component: running.seconds for component, running in results.items()}

    def _start_process(
        self, component: Component, run_dir: Path, environ: dict[str, str], cancelled: threading.Event
    ) -> _Running:
        began = time.monotonic()
        port = self._ports.get(component)
        if component is Component.KAFKA:
            settings = self._kafka if port is None else replace(self._kafka, port=port)
            process, endpoint = start_kafka(
                run_dir,
                settings=settings,
                environ=environ,
                timeout=self._timeout,
                cancelled=cancelled,
                cache_root=self._cache_root,
            )
        elif component is Component.MONGODB:
            process, endpoint = start_mongodb(
                run_dir, port=port, environ=environ, timeout=self._timeout, cancelled=cancelled
            )
        else:
            process, endpoint = start_pubsub_emulator(
                run_dir, port=port, environ=environ, timeout=self._timeout, cancelled=cancelled
            )
        seconds = time.monotonic() - began
        logger.info("%s ready at %s in %.1f s", component, endpoint, seconds)
        return _Running(endpoint, "process", seconds, stop=process.stop, processes=[process])

    def _launch_containers(self, components: list[Component]) -> dict[Component, float]:
        seconds: dict[Component, float] = {}
        for component in components:
            began = time.monotonic()
            endpoint, stop = containers.start(component.value)
            seconds[component] = time.monotonic() - began
            self._running[component] = _Running(endpoint, "container", seconds[component], stop=stop)
        return seconds

    def endpoint(self, component: Component) -> str:
        """Return a started server's endpoint; raise :class:`DevstackError` if it was not started."""
        running = self._running.get(component)
        if running is None:
            raise DevstackError(
                f"{component} was not started; call Stack.start([Component.{component.name}])"
            )
        return running.endpoint

    def origin(self, component: Component) -> str:
        """How a started server was provided: ``"process"``, ``"container"`` or ``"environment"``."""
        self.endpoint(component)
        return self._running[component].origin

    @property
    def kafka_bootstrap_servers(self) -> str:
        """``host:port`` of the Kafka broker."""
        return self.endpoint(Component.KAFKA)

    @property
    def mongodb_uri(self) -> str:
        """MongoDB connection URI."""
        return self.endpoint(Component.MONGODB)

    @property
    def pubsub_emulator_host(self) -> str:
        """``host:port`` of the Pub/Sub emulator, the value of ``PUBSUB_EMULATOR_HOST``."""
        return self.endpoint(Component.PUBSUB)

    @property
    def endpoints(self) -> StackEndpoints:
        """All three endpoints; raises :class:`DevstackError` unless all three were started."""
        return StackEndpoints(self.kafka_bootstrap_servers, self.mongodb_uri, self.pubsub_emulator_host)

    def env(self) -> dict[str, str]:
        """The three endpoint variables (see :meth:`StackEndpoints.env`)."""
        return self.endpoints.env()

    def pids(self) -> list[int]:
        """PIDs of the server processes this stack started (none for provided or container servers)."""
        return [p.pid for running in self._running.values() for p in running.processes]

    def processes(self) -> list[ManagedProcess]:
        """The server processes this stack started."""
        return [p for running in self._running.values() for p in running.processes]

    def stop(self) -> None:
        """Stop every server this stack started and remove its run directory. Idempotent.

        The run directory is kept (for its logs) if a start failed. Never raises for a server that
        already exited.
        """
        with self._lock:
            running, self._running = self._running, {}
            # SIGTERM to all first, so their shutdowns overlap (SecantusDB alone takes ~2 s); no threads,
            # as this also runs from atexit, when no new thread may start.
            for item in running.values():
                for process in item.processes:
                    process.terminate()
            for item in running.values():
                if item.stop is not None:
                    item.stop()
            _unstopped.discard(self)
            if self._owns_run_dir and self._run_dir is not None and not self._keep_run_dir:
                shutil.rmtree(self._run_dir, ignore_errors=True)
                self._run_dir = None

    def __enter__(self) -> Self:
        """Start all three servers."""
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Stop everything."""
        self.stop()


_unstopped: weakref.WeakSet[Stack] = weakref.WeakSet()


@atexit.register
def _stop_unstopped_stacks() -> None:
    """At interpreter exit, stop stacks their owner forgot (servers and run directories)."""
    for stack in list(_unstopped):
        stack.stop()
