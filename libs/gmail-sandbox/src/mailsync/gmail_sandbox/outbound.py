"""Mail that leaves the sandbox: the copies of sent messages meant for recipients outside it.

Gmail delivers to any address. The sandbox keeps a log of every message that left (so a test can ask what a
contact received) and, when an SMTP relay (``host:port``) is configured, hands each copy to it: the envelope
recipients are the outside ``To``/``Cc``/``Bcc`` addresses and the ``Bcc`` header is removed, as an MTA does.
A relay failure is logged and recorded on the entry; there is no retry queue and no bounce.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import smtplib
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)


@dataclass
class OutboundMessage:
    """One message as it left the sandbox."""

    mailbox: str
    message_id: str
    envelope_from: str
    recipients: tuple[str, ...]
    raw: bytes
    sent_at: float
    relay_status: str | None = None

    def describe(self) -> dict[str, Any]:
        """JSON view for the admin API."""
        return {
            "mailbox": self.mailbox,
            "id": self.message_id,
            "envelope_from": self.envelope_from,
            "recipients": list(self.recipients),
            "sent_at": self.sent_at,
            "relay_status": self.relay_status,
            "raw_base64": base64.b64encode(self.raw).decode(),
        }


class OutboundMail:
    """The log of outgoing mail and the optional SMTP relay."""

    def __init__(self, relay: str | None = None) -> None:
        self.relay = relay
        self.messages: list[OutboundMessage] = []
        self._tasks: set[asyncio.Task[None]] = set()

    def record(self, entry: OutboundMessage) -> None:
        """Log ``entry`` and, with a relay configured, start handing it over in the background."""
        self.messages.append(entry)
        if self.relay:
            task = asyncio.get_running_loop().create_task(self._relay(entry))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _relay(self, entry: OutboundMessage) -> None:
        try:
            await asyncio.to_thread(self._smtp_send, entry)
        except (OSError, smtplib.SMTPException) as exc:
            entry.relay_status = f"failed: {exc}"
            logger.warning("SMTP relay of %s to %s failed", entry.message_id, self.relay, exc_info=True)
        else:
            entry.relay_status = "relayed"

    def _smtp_send(self, entry: OutboundMessage) -> None:
        assert self.relay is not None  # noqa: S101 - only scheduled with a relay
        host, _, port = self.relay.rpartition(":")
        with smtplib.SMTP(host or self.relay, int(port or 25), timeout=10) as smtp:
            smtp.sendmail(entry.envelope_from, list(entry.recipients), entry.raw)

    async def wait_idle(self) -> None:
        """Wait until every relay hand-over in progress has finished."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks))

    async def close(self) -> None:
        """Cancel hand-overs in progress."""
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def reset(self) -> None:
        """Forget the log."""
        self.messages.clear()
