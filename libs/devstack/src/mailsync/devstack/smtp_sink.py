"""An SMTP server that accepts every message and keeps it: the subaccount mail provider of the local product.

The sender delivers bulk and workflow mail, and individual mail of users without a connected mailbox, to a
subaccount-level SMTP provider (S2, C5). Locally that provider is this sink (aiosmtpd in a thread of the
process that runs the product); tests and the demo read what it received from `messages`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from email import message_from_bytes, policy
from typing import TYPE_CHECKING, Any

from aiosmtpd.controller import Controller

if TYPE_CHECKING:
    from email.message import EmailMessage


@dataclass(frozen=True)
class ReceivedMail:
    """One accepted message: the SMTP envelope and the bytes of the message."""

    mail_from: str
    recipients: tuple[str, ...]
    content: bytes

    @property
    def message(self) -> EmailMessage:
        """The message parsed with the standard library's modern policy."""
        parsed: EmailMessage = message_from_bytes(self.content, policy=policy.default)
        return parsed


class _Handler:
    def __init__(self, sink: SmtpSink) -> None:
        self._sink = sink

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's hook
        self._sink.record(
            ReceivedMail(str(envelope.mail_from), tuple(envelope.rcpt_tos), bytes(envelope.content))
        )
        return "250 Message accepted for delivery"


class SmtpSink:
    """Listens on `host:port` between `start` and `stop`; both are idempotent."""

    def __init__(self, host: str, port: int) -> None:
        """Configure; nothing listens until `start`."""
        self.host = host
        self.port = port
        self._messages: list[ReceivedMail] = []
        self._lock = threading.Lock()
        self._controller: Controller | None = None

    @property
    def messages(self) -> list[ReceivedMail]:
        """A copy of everything accepted so far, in arrival order."""
        with self._lock:
            return list(self._messages)

    def record(self, mail: ReceivedMail) -> None:
        """Keep one accepted message."""
        with self._lock:
            self._messages.append(mail)

    def start(self) -> None:
        """Start listening (returns once the server accepts connections)."""
        if self._controller is None:
            controller = Controller(_Handler(self), hostname=self.host, port=self.port)
            controller.start()
            self._controller = controller

    def stop(self) -> None:
        """Stop listening."""
        if self._controller is not None:
            controller, self._controller = self._controller, None
            controller.stop()
