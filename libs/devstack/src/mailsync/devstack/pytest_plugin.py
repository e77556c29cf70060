"""pytest plugin (entry point ``mailsync_devstack``): the real servers as session fixtures.

Fixtures:

* ``devstack`` (session): a :class:`~mailsync.devstack.stack.StackEndpoints` with all three servers.
* ``kafka_bootstrap_servers``, ``mongodb_uri``, ``pubsub_emulator_host`` (session, ``str``): each needs
  only its own server.
* ``unique_name`` (function): a factory, ``unique_name("topic") -> "topic-1a2b3c4d"``, for topic, group,
  subscription and database names, so tests sharing the session's servers do not see each other's data.

Servers start lazily, on the first test that requests one of these fixtures, once per test run: that
first start launches, concurrently, every server that some selected test requests (so a run of Kafka
tests only starts Kafka, and a full run waits only for the slowest server). They stop when the session
ends (also after Ctrl-C; an ``atexit`` hook is the backstop). A run that requests none starts nothing.

Endpoints from the environment (``MAILSYNC_KAFKA_BOOTSTRAP_SERVERS``, ``MAILSYNC_MONGODB_URI``,
``PUBSUB_EMULATOR_HOST``) win: those servers are not started. A server that cannot start makes the
requesting tests error (not skip), with the reason and the log tail. The fixtures are synchronous;
async tests use the returned strings with their own clients.
"""

from __future__ import annotations

import contextlib
import sys
import time
import uuid
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

    from mailsync.devstack.stack import Component, Stack, StackEndpoints

# The stack modules (and pymongo) are imported inside the fixtures, so that test runs which need no
# server do not pay for them at start-up.


_SERVERS_OF_FIXTURE: dict[str, tuple[str, ...]] = {
    "devstack": ("kafka", "mongodb", "pubsub"),
    "kafka_bootstrap_servers": ("kafka",),
    "mongodb_uri": ("mongodb",),
    "pubsub_emulator_host": ("pubsub",),
}
_first_start_done = pytest.StashKey[bool]()


def _servers_wanted_by(session: pytest.Session) -> set[str]:
    return {
        server
        for item in session.items
        for fixture in getattr(item, "fixturenames", ())
        for server in _SERVERS_OF_FIXTURE.get(fixture, ())
    }


def _start(stack: Stack, components: Iterable[Component | str], request: pytest.FixtureRequest) -> None:
    config = request.config
    wanted: set[Component | str] = set(components)
    if not config.stash.get(_first_start_done, False):
        # Start, together, every server some selected test will ask for: total time is the slowest one's.
        config.stash[_first_start_done] = True
        wanted |= _servers_wanted_by(request.session)
    began = time.monotonic()
    seconds = stack.start(sorted(wanted))
    if not seconds:
        return
    detail = ", ".join(
        f"{c} from the environment" if stack.origin(c) == "environment" else f"{c} {s:.1f} s"
        for c, s in seconds.items()
    )
    line = f"mailsync-devstack: started in {time.monotonic() - began:.1f} s ({detail})"
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    # Fixture setup runs under output capture; suspend it so the line reaches the terminal.
    with capture.global_and_fixture_disabled() if capture is not None else contextlib.nullcontext():
        if reporter is not None:
            reporter.write_line("")
            reporter.write_line(line)
        else:
            sys.stderr.write(line + "\n")


@pytest.fixture(scope="session")
def mailsync_stack() -> Iterator[Stack]:
    """The session's :class:`Stack`; nothing is started until another fixture asks for a server."""
    from mailsync.devstack.stack import Stack  # noqa: PLC0415 - see the note on imports above

    stack = Stack()
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="session")
def devstack(mailsync_stack: Stack, request: pytest.FixtureRequest) -> StackEndpoints:
    """All three servers (started concurrently if needed); their endpoints."""
    from mailsync.devstack.stack import ALL_COMPONENTS  # noqa: PLC0415 - see the note on imports above

    _start(mailsync_stack, ALL_COMPONENTS, request)
    return mailsync_stack.endpoints


@pytest.fixture(scope="session")
def kafka_bootstrap_servers(mailsync_stack: Stack, request: pytest.FixtureRequest) -> str:
    """Bootstrap servers (``host:port``) of the session's Kafka broker."""
    _start(mailsync_stack, ["kafka"], request)
    return mailsync_stack.kafka_bootstrap_servers


@pytest.fixture(scope="session")
def mongodb_uri(mailsync_stack: Stack, request: pytest.FixtureRequest) -> str:
    """URI of the session's MongoDB-wire server."""
    _start(mailsync_stack, ["mongodb"], request)
    return mailsync_stack.mongodb_uri


@pytest.fixture(scope="session")
def pubsub_emulator_host(mailsync_stack: Stack, request: pytest.FixtureRequest) -> str:
    """``host:port`` of the session's Pub/Sub emulator (the value for ``PUBSUB_EMULATOR_HOST``)."""
    _start(mailsync_stack, ["pubsub"], request)
    return mailsync_stack.pubsub_emulator_host


def new_unique_name(prefix: str) -> str:
    """Return ``<prefix>-<8 hex chars>``: valid as a Kafka topic or group, Pub/Sub id and database name."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def unique_name() -> Callable[[str], str]:
    """A factory of unique names: ``unique_name("topic") -> "topic-1a2b3c4d"``."""
    return new_unique_name
