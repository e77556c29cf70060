"""Sending through the subaccount-level SMTP provider (S2 bulk and workflow mail; C5 individual mail of a user
without an active connection).

The message carries the sender's own Message-ID (the same for every delivery of a request) and
`From: MAILSYNC_SMTP_FROM_ADDRESS`. SMTP cannot be asked whether a message went out, so a redelivery of an
`attempting` SMTP send sends it again with that Message-ID, and receiving systems can drop the duplicate.
Nothing here touches a mailbox quota.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mailsync.common.contracts import Address, SendCompleted, SendEmail, SendFailureReason
from mailsync.common.delivery import TransientError
from mailsync.sender.adapters.delivery_errors import DeliveryRejectedError
from mailsync.sender.adapters.smtp import SmtpRelay
from mailsync.sender.domain import (
    Refusal,
    SizePolicy,
    build_message,
    encode,
    message_id_for,
    not_sent,
    sent_through_provider,
)
from mailsync.sender.handlers.attempts import Attempts, Progress
from mailsync.sender.handlers.retries import RetriesExhaustedError


@dataclass(frozen=True)
class SubaccountRoute:
    """Sends one command through the subaccount's SMTP provider."""

    attempts: Attempts
    smtp: SmtpRelay
    sender: Address
    message_id_domain: str
    policy: SizePolicy = field(default_factory=lambda: SizePolicy("the subaccount provider"))

    async def send(self, command: SendEmail, progress: Progress) -> SendCompleted:
        """Send `command`, or answer why it was not sent."""
        now = self.attempts.clock()
        refusal = self.policy.check_attachments(command.attachments)
        content = refusal or await self.attempts.content(command)
        if isinstance(content, Refusal):
            return self._not_sent(command, content, attempted=False)
        message_id = message_id_for(command.request_id, self.message_id_domain)
        message = build_message(command, content, sender=self.sender, message_id=message_id, date=now)
        refusal = self.policy.check_message(len(encode(message)))
        if refusal is not None:
            return self._not_sent(command, refusal, attempted=False)
        await self.attempts.journal(command.request_id, "subaccount_provider", None, progress)
        try:
            await self.attempts.retrier.run(lambda: self.smtp.send(message))
        except DeliveryRejectedError as error:
            return self._not_sent(command, Refusal(error.reason, error.detail), attempted=True)
        except RetriesExhaustedError as error:
            if error.outcome_unknown:
                raise TransientError(f"SMTP outcome unknown after retries: {error.detail}") from error
            refusal = Refusal(SendFailureReason.PROVIDER_UNAVAILABLE, error.detail)
            return self._not_sent(command, refusal, attempted=True)
        return sent_through_provider(command, message_id, at=self.attempts.clock())

    def _not_sent(self, command: SendEmail, refusal: Refusal, *, attempted: bool) -> SendCompleted:
        return not_sent(
            command, refusal, attempted=attempted, at=self.attempts.clock(), route="subaccount_provider"
        )
