"""``mailsync-graph-sandbox``: run the Graph + identity sandbox alone.

Example: ``mailsync-graph-sandbox --port 8086 --http-port 8087 --state-dir .graph-sandbox``; the CA file to
trust is printed at start and written to ``<state-dir>/ca.pem``. ``--tls-hostname`` adds the names other
machines or containers call it by (``--tls-hostname graph-sandbox``) to the server certificate, which
otherwise names only loopback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from collections.abc import Sequence
from pathlib import Path

from mailsync.graph_sandbox import tls
from mailsync.graph_sandbox.config import SandboxConfig
from mailsync.graph_sandbox.server import SandboxServer

logger = logging.getLogger("mailsync.graph_sandbox")


def _tls_hostname(value: str) -> str:
    try:
        tls.alt_name(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mailsync-graph-sandbox", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8086, help="HTTPS port (0 picks a free one)")
    parser.add_argument("--http-port", type=int, default=None, help="also serve plain HTTP on this port")
    parser.add_argument("--no-tls", action="store_true", help="plain HTTP only on --port (MSAL won't work)")
    parser.add_argument("--state-dir", type=Path, default=Path(".graph-sandbox"), help="where ca.pem goes")
    parser.add_argument(
        "--tls-hostname",
        action="append",
        dest="tls_hostnames",
        default=[],
        type=_tls_hostname,
        metavar="NAME",
        help="also name this DNS name or IP address in the TLS certificate (repeatable)",
    )
    parser.add_argument("--fault-seed", type=int, default=0)
    return parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line's options (``sys.argv`` by default); exits with status 2 on a bad one."""
    return _parser().parse_args(argv)


async def _serve(args: argparse.Namespace) -> None:
    config = SandboxConfig(fault_seed=args.fault_seed)
    server = SandboxServer(
        config,
        host=args.host,
        port=0 if args.no_tls else args.port,
        tls_enabled=not args.no_tls,
        http_port=args.port if args.no_tls else args.http_port,
        state_dir=args.state_dir,
        tls_hostnames=args.tls_hostnames,
    )
    await server.start()
    logger.info("graph sandbox on %s (tenant %s)", server.base_url, config.tenant_id)
    if server.tls is not None:
        logger.info("trust this CA: %s (certificate for %s)", server.ca_file, ", ".join(server.tls_hostnames))
    if server.plain_port is not None:
        logger.info("plain HTTP on %s", server.http_url)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await server.stop()


def main(argv: list[str] | None = None) -> None:
    """Entry point of the console script."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    asyncio.run(_serve(parse_args(argv)))
