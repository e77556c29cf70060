"""``mailsync-gmail-sandbox``: run the sandbox on its own.

Example::

    mailsync-gmail-sandbox --port 8085 --pubsub-emulator-host 127.0.0.1:8681 \\
        --mailbox alice@example.com --mailbox bob@corp.example:workspace

``--pubsub-emulator-host`` defaults to ``$PUBSUB_EMULATOR_HOST``; without either, notifications stay in memory
(``GET /_admin/notifications``).
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from collections.abc import Sequence

from aiohttp import web

from mailsync.gmail_sandbox.app import create_app
from mailsync.gmail_sandbox.clock import Clock, ManualClock, SystemClock
from mailsync.gmail_sandbox.config import DEFAULT_CLIENT, MailboxSpec, SandboxConfig
from mailsync.gmail_sandbox.mailbox import WEEK_SECONDS, AccountKind
from mailsync.gmail_sandbox.oauth import OAuthClient


def _mailbox(value: str) -> MailboxSpec:
    address, _, kind = value.partition(":")
    return MailboxSpec(address=address, kind=AccountKind(kind or "consumer"))


def _client(value: str) -> OAuthClient:
    client_id, sep, secret = value.partition(":")
    if not sep:
        raise argparse.ArgumentTypeError("expected CLIENT_ID:SECRET")
    return OAuthClient(client_id, secret)


def parse_args(argv: Sequence[str] | None = None) -> SandboxConfig:
    """Turn command-line arguments (and ``PUBSUB_EMULATOR_HOST``) into a :class:`SandboxConfig`."""
    parser = argparse.ArgumentParser(prog="mailsync-gmail-sandbox", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8085)
    parser.add_argument("--public-url", default=None, help="base URL clients use (default http://HOST:PORT)")
    parser.add_argument("--pubsub-emulator-host", default=os.environ.get("PUBSUB_EMULATOR_HOST"))
    parser.add_argument("--project-id", default="mailsync-local")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--history-retention-seconds", type=float, default=WEEK_SECONDS)
    parser.add_argument("--quota-units-per-minute", type=int, default=15_000)
    parser.add_argument("--max-concurrent-requests", type=int, default=None)
    parser.add_argument(
        "--smtp-relay", default=None, help="HOST:PORT receiving mail sent outside the sandbox"
    )
    parser.add_argument(
        "--manual-clock", action="store_true", help="time moves only via /_admin/clock/advance"
    )
    parser.add_argument(
        "--mailbox", action="append", type=_mailbox, default=[], help="ADDRESS[:consumer|workspace]"
    )
    parser.add_argument("--client", action="append", type=_client, default=[], help="CLIENT_ID:SECRET")
    args = parser.parse_args(argv)
    clock: Clock = ManualClock(time.time()) if args.manual_clock else SystemClock()
    return SandboxConfig(
        host=args.host,
        port=args.port,
        public_url=args.public_url,
        pubsub_emulator_host=args.pubsub_emulator_host or None,
        project_id=args.project_id,
        seed=args.seed,
        clock=clock,
        history_retention_seconds=args.history_retention_seconds,
        quota_units_per_user_per_minute=args.quota_units_per_minute,
        max_concurrent_requests_per_user=args.max_concurrent_requests,
        oauth_clients=(DEFAULT_CLIENT, *args.client),
        mailboxes=tuple(args.mailbox),
        smtp_relay=args.smtp_relay,
    )


def main(argv: Sequence[str] | None = None) -> None:
    """Run the sandbox until interrupted."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    config = parse_args(argv)
    web.run_app(create_app(config), host=config.host, port=config.port)
