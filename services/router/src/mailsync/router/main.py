"""Console entry point: `mailsync-router` serves the service until SIGINT/SIGTERM."""

from __future__ import annotations

from mailsync.common.service import run_service
from mailsync.router.app import create_app
from mailsync.router.settings import Settings


def main() -> None:
    """Read settings from the environment and run the service."""
    run_service(create_app, Settings())
