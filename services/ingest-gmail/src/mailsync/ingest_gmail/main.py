"""Console entry point: `mailsync-ingest-gmail` serves the service until SIGINT/SIGTERM."""

from __future__ import annotations

from mailsync.common.service import run_service
from mailsync.ingest_gmail.app import create_app
from mailsync.ingest_gmail.settings import Settings


def main() -> None:
    """Read settings from the environment and run the service."""
    run_service(create_app, Settings())
