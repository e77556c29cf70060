"""Sending through the user's Outlook mailbox over Microsoft Graph (S1, S5/O3, S6).

Graph's `sendMail` and `reply` answer 202 without the sent message's id, so the send goes through a draft:
create it (a reply to the thread's last message for S6, so Exchange keeps the conversation), attach, journal
the draft's `internetMessageId` as `attempting`, send it, and report the sent copy found by that id. A
delivery that finds the request `attempting` looks for that id among sent messages, else sends the draft if
it still exists, else starts over; so an Outlook send never happens twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial

from mailsync.common.contracts import SendCompleted, SendEmail
from mailsync.sender.adapters.graph import GraphClient, GraphMessage
from mailsync.sender.adapters.mailbox_sessions import GraphSession
from mailsync.sender.domain import (
    AttachmentPolicy,
    MailboxConnection,
    MessageContent,
    ProviderReceipt,
    Refusal,
    graph_message,
    sent_through_mailbox,
)
from mailsync.sender.handlers.attempts import Progress
from mailsync.sender.handlers.mailbox import PROVIDER_FAILURES, MailboxAccess


@dataclass(frozen=True)
class OutlookRoute:
    """Sends one command through an Outlook connection."""

    mailbox: MailboxAccess
    graph: GraphClient
    policy: AttachmentPolicy = field(default_factory=lambda: AttachmentPolicy("Outlook"))

    async def send(
        self,
        command: SendEmail,
        connection: MailboxConnection,
        progress: Progress,
        journalled_internet_message_id: str | None,
    ) -> SendCompleted:
        """Send `command` through `connection`'s mailbox, or answer why it was not sent;
        `journalled_internet_message_id` is the draft an earlier delivery journalled, if any."""
        refusal = self.policy.check(command.attachments)
        if refusal is not None:
            return self.mailbox.refused(command, connection, refusal)
        granted = await self.mailbox.grant(command, connection, progress)
        if isinstance(granted, SendCompleted):
            return granted
        grant, connection = granted
        content = await self.mailbox.attempts.content(command)
        if isinstance(content, Refusal):
            return self.mailbox.refused(command, connection, content)
        refused = await self.mailbox.reserve_quota(command, connection, grant.daily_send_limit, progress)
        if refused is not None:
            return refused
        graph = GraphSession(self.graph, self.mailbox.tokens, grant)
        try:
            sent = None
            if progress.attempted and journalled_internet_message_id:
                sent = await self._resume(
                    command, graph, connection, progress, journalled_internet_message_id
                )
            if sent is None:
                sent = await self._send(command, content, graph, connection, progress)
        except PROVIDER_FAILURES as error:
            # The provider was called (a draft at least), even if nothing went out: `failed`.
            return await self.mailbox.after_failure(command, connection, progress, error)
        receipt = ProviderReceipt(provider_message_id=sent.id, provider_thread_id=sent.conversation_id)
        return sent_through_mailbox(
            command, connection, receipt, sent.internet_message_id, at=self.mailbox.attempts.clock()
        )

    async def _resume(
        self,
        command: SendEmail,
        graph: GraphSession,
        connection: MailboxConnection,
        progress: Progress,
        internet_message_id: str,
    ) -> GraphMessage | None:
        """After a crash: the send journalled before it, if it went out; else its draft, sent now."""
        attempts = self.mailbox.attempts
        sent = await attempts.retrier.lookup(lambda: graph.find(internet_message_id))
        if sent is not None:
            return sent
        draft = await attempts.retrier.lookup(lambda: graph.draft(internet_message_id))
        if draft is None:
            return None  # the draft was never completed; a new one is made
        await attempts.journal(
            command.request_id, "mailbox", connection, progress, internet_message_id=internet_message_id
        )
        return await attempts.retrier.run(
            lambda: graph.send_and_find(draft), check=lambda: graph.find(draft.internet_message_id)
        )

    async def _send(
        self,
        command: SendEmail,
        content: MessageContent,
        graph: GraphSession,
        connection: MailboxConnection,
        progress: Progress,
    ) -> GraphMessage:
        """Draft (a reply to the thread's last message for S6), attach, journal, send, find the sent copy."""
        retrier = self.mailbox.attempts.retrier
        parent = await self._parent(command, graph)
        message = graph_message(command, content, reply=parent is not None)
        if parent is not None:
            parent_id = parent.id
            draft = await retrier.run(lambda: graph.create_reply(parent_id, message))
        else:
            draft = await retrier.run(lambda: graph.create_draft(message))
        for meta, data in content.attachments:
            await retrier.run(partial(graph.attach, draft.id, meta.filename, meta.content_type, data))
        await self.mailbox.attempts.journal(
            command.request_id, "mailbox", connection, progress, internet_message_id=draft.internet_message_id
        )
        return await retrier.run(
            lambda: graph.send_and_find(draft), check=lambda: graph.find(draft.internet_message_id)
        )

    async def _parent(self, command: SendEmail, graph: GraphSession) -> GraphMessage | None:
        """S6 on Outlook: the last message of the thread a reply belongs to (None for a new thread)."""
        context = command.reply_context
        if context is None:
            return None
        retrier = self.mailbox.attempts.retrier
        conversation_id = context.provider_thread_id
        if conversation_id is None:
            replied_to = await retrier.lookup(lambda: graph.find(context.in_reply_to))
            conversation_id = replied_to.conversation_id if replied_to is not None else None
        if conversation_id is None:
            return None
        thread = conversation_id
        return await retrier.lookup(lambda: graph.last_in_conversation(thread))
