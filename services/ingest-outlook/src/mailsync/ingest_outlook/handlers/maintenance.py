"""The maintenance loop: subscription renewals and creation, then the watchdog, every interval."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from mailsync.ingest_outlook.handlers.subscriptions import Subscriptions
from mailsync.ingest_outlook.handlers.watchdog import Watchdog

logger = logging.getLogger(__name__)


@dataclass
class Maintenance:
    """One round keeps subscriptions alive and hints the mailboxes due for the watchdog."""

    subscriptions: Subscriptions
    watchdog: Watchdog

    async def run_round(self) -> None:
        await self.subscriptions.maintain()
        await self.watchdog.run_round()

    async def run(self, interval_seconds: float) -> None:
        """Maintenance forever (cancelled at shutdown); a failing round is logged and retried next time."""
        while True:
            try:
                await self.run_round()
            except Exception:
                logger.exception("maintenance round failed")
            await asyncio.sleep(interval_seconds)
