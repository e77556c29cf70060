"""Sending through the user's Gmail mailbox (S1, S4, S6).

The message is built with the standard `email` package and carries the sender's own Message-ID, the same for
every delivery of a request; a reply joins its Gmail thread (the given `threadId`, else the thread of the
message it answers in the sending mailbox). The send is journalled `attempting` before Gmail is called, and
a delivery that finds it `attempting` (a crash, or a lost answer) first searches the mailbox for that
Message-ID: a Gmail send never happens twice.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailsync.common.contracts import Address, SendCompleted, SendEmail
from mailsync.sender.adapters.access_tokens import ConnectionNeedsReauthError
from mailsync.sender.adapters.gmail import GmailClient
from mailsync.sender.adapters.mailbox_sessions import GmailSession
from mailsync.sender.domain import (
    GMAIL_POLICY,
    MailboxConnection,
    ProviderReceipt,
    Refusal,
    build_message,
    encode,
    message_id_for,
    sent_through_mailbox,
)
from mailsync.sender.handlers.attempts import Progress
from mailsync.sender.handlers.mailbox import PROVIDER_FAILURES, MailboxAccess


@dataclass(frozen=True)
class _PreparedSend:
    connection: MailboxConnection
    gmail: GmailSession
    daily_send_limit: int
    raw: bytes
    thread_id: str | None
    message_id: str


@dataclass(frozen=True)
class GmailRoute:
    """Sends one command through a Gmail connection."""

    mailbox: MailboxAccess
    gmail: GmailClient
    message_id_domain: str

    async def send(
        self, command: SendEmail, connection: MailboxConnection, progress: Progress
    ) -> SendCompleted:
        """Send `command` through `connection`'s mailbox, or answer why it was not sent."""
        try:
            prepared = await self._prepare(command, connection, progress)
        except ConnectionNeedsReauthError:  # Gmail refused a fresh token while looking up the thread
            return await self.mailbox.needs_reauth(command, connection, progress)
        if isinstance(prepared, SendCompleted):
            return prepared
        refused = await self.mailbox.reserve_quota(
            command, prepared.connection, prepared.daily_send_limit, progress
        )
        if refused is not None:
            return refused
        try:
            receipt = await self._deliver(command, prepared, progress)
        except PROVIDER_FAILURES as error:
            return await self.mailbox.after_failure(command, prepared.connection, progress, error)
        return sent_through_mailbox(
            command, prepared.connection, receipt, prepared.message_id, at=self.mailbox.attempts.clock()
        )

    async def _prepare(
        self, command: SendEmail, connection: MailboxConnection, progress: Progress
    ) -> _PreparedSend | SendCompleted:
        """Everything the Gmail call needs, or the answer when the command cannot go this way."""
        attempts = self.mailbox.attempts
        now = attempts.clock()
        refusal = GMAIL_POLICY.check_attachments(command.attachments)
        if refusal is not None:
            return self.mailbox.refused(command, connection, refusal)
        granted = await self.mailbox.grant(command, connection, progress)
        if isinstance(granted, SendCompleted):
            return granted
        grant, connection = granted
        content = await attempts.content(command)
        if isinstance(content, Refusal):
            return self.mailbox.refused(command, connection, content)
        message_id = message_id_for(command.request_id, self.message_id_domain)
        gmail = GmailSession(self.gmail, self.mailbox.tokens, grant)
        thread_id = await self._thread_for(command, gmail)
        sender = Address(email=grant.email_address)
        raw = encode(build_message(command, content, sender=sender, message_id=message_id, date=now))
        refusal = GMAIL_POLICY.check_message(len(raw))
        if refusal is not None:
            return self.mailbox.refused(command, connection, refusal)
        return _PreparedSend(connection, gmail, grant.daily_send_limit, raw, thread_id, message_id)

    async def _thread_for(self, command: SendEmail, gmail: GmailSession) -> str | None:
        """The Gmail thread a reply joins (S6): the given one, else the thread of the message replied to."""
        context = command.reply_context
        if context is None:
            return None
        if context.provider_thread_id is not None:
            return context.provider_thread_id
        parent = await self.mailbox.attempts.retrier.lookup(lambda: gmail.find(context.in_reply_to))
        return parent.provider_thread_id if parent is not None else None

    async def _deliver(
        self, command: SendEmail, prepared: _PreparedSend, progress: Progress
    ) -> ProviderReceipt:
        """Send once: look in the Sent folder first when an earlier attempt's outcome is unknown."""
        attempts, gmail = self.mailbox.attempts, prepared.gmail
        if progress.attempted:
            found = await attempts.retrier.lookup(lambda: gmail.find(prepared.message_id))
            if found is not None:
                return found
        await attempts.journal(command.request_id, "mailbox", prepared.connection, progress)
        return await attempts.retrier.run(
            lambda: gmail.send(prepared.raw, prepared.thread_id),
            check=lambda: gmail.find(prepared.message_id),
        )
