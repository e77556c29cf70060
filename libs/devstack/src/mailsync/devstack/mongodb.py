"""The MongoDB-wire server for development and tests: SecantusDB (``secantusd-py``), in memory.

SecantusDB is a MongoDB-wire server written in Python on WiredTiger (beta, GPL-2.0, a dev/test dependency
only). Code must only use what MongoDB 7 offers: production runs against real MongoDB.

It runs as a standalone server (``--standalone``). As a one-node replica set it would keep an oplog, written
in Python on every write: about a third of an insert's cost in the server. The services use neither
transactions nor change streams, which are what a replica set would add.

The server is started with an empty config file of its own, so a ``secantusd.toml`` in the working
directory or the home directory cannot change its behaviour. Ready means a ``ping`` command succeeded.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from pymongo import MongoClient
from pymongo.errors import PyMongoError

from mailsync.devstack.errors import MissingToolError
from mailsync.devstack.ports import LOOPBACK, ensure_port_free, free_port
from mailsync.devstack.process import ManagedProcess

if TYPE_CHECKING:
    import threading
    from collections.abc import Mapping


def mongodb_uri(port: int) -> str:
    """Return the URI of a single local server (``directConnection`` skips replica-set discovery)."""
    return f"mongodb://{LOOPBACK}:{port}/?directConnection=true"


def answers_ping(uri: str, *, timeout: float = 1.0) -> bool:
    """Return True if the server at ``uri`` answers ``ping``."""
    millis = int(timeout * 1000)
    client: MongoClient[dict[str, object]] = MongoClient(
        uri, serverSelectionTimeoutMS=millis, connectTimeoutMS=millis, socketTimeoutMS=millis
    )
    try:
        reply = client.admin.command("ping")
    except PyMongoError:
        return False
    finally:
        client.close()
    return bool(reply.get("ok") == 1)


def secantusd_executable(environ: Mapping[str, str]) -> str:
    """Return the ``secantusd-py`` script next to this interpreter, or on PATH; raise MissingToolError."""
    beside = Path(sys.executable).parent / "secantusd-py"
    if beside.is_file():
        return str(beside)
    found = shutil.which("secantusd-py", path=environ.get("PATH"))
    if found is None:
        raise MissingToolError(
            "secantusd-py",
            "the MongoDB-wire server",
            "It comes with the SecantusDB package, a dependency of mailsync-devstack: "
            "run `uv sync --all-packages`.",
        )
    return found


def start_mongodb(
    run_dir: Path,
    *,
    port: int | None,
    environ: Mapping[str, str],
    timeout: float,
    cancelled: threading.Event | None = None,
) -> tuple[ManagedProcess, str]:
    """Start an in-memory SecantusDB server; return it and its URI.

    Raises :class:`PortInUseError` for an explicit port that is taken and :class:`ServerStartError`
    (with the log tail; the process is stopped) if it exits or does not answer ``ping`` within ``timeout``.
    """
    if port is not None:
        ensure_port_free(port, "the MongoDB-wire server")
    chosen = port or free_port()
    mongo_dir = run_dir / "mongodb"
    mongo_dir.mkdir(parents=True, exist_ok=True)
    config = mongo_dir / "secantusd.toml"
    config.write_text("# empty on purpose: every setting comes from the command line\n")
    server = ManagedProcess(
        "mongodb (secantusd-py)",
        [
            secantusd_executable(environ),
            "--config",
            str(config),
            "--host",
            LOOPBACK,
            "--port",
            str(chosen),
            "--storage-path",
            ":memory:",
            "--log-level",
            "WARNING",
            "--standalone",
        ],
        log_path=mongo_dir / "mongodb.log",
        environ=environ,
        cwd=mongo_dir,
    )
    uri = mongodb_uri(chosen)
    server.wait_ready(lambda: answers_ping(uri), timeout=timeout, cancelled=cancelled)
    return server, uri
