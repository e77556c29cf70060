"""The router's use cases: keep the read models current, file messages, and record CRM-started threads.

Every handler is idempotent, so at-least-once delivery is safe:

- `apply_directory_event` and `apply_connection_change` converge to the same state however often an event is
  applied (revision guards; set-based binding updates).
- `record_send_result` links and claims the CRM-started thread (first write wins) and stores the CRM-sent
  message under its deterministic id, so the copy that later appears in the mailbox's Sent folder is the same
  message, not a second one.
- `route_message` announces each filing (`ConversationMessageRecorded`) and then stores it under a
  deterministic message id (D2); a filing already stored is neither announced nor stored again, and a crash
  between announcing and storing announces it once more, under the same `event_id`. `MessageNotSynced`
  events also carry a deterministic `event_id`, so consumers can drop the duplicates a redelivery produces.
  A CRM-sent message stored from its send result is never announced: the CRM created it.

Database and broker errors propagate: the delivery middleware retries them and never commits the offset of
a message whose effects were not all applied.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from mailsync.common.contracts import (
    CONVERSATION_MESSAGES_RECORDED,
    MESSAGES_NOT_SYNCED,
    ConnectionChanged,
    ConversationMessageRecorded,
    DirectoryEvent,
    MessageIngested,
    MessageNotSynced,
    Provider,
    SendCompleted,
)
from mailsync.common.kafka import EventPublisher
from mailsync.common.mongo import Document
from mailsync.router.adapters.connection_store import ConnectionStore
from mailsync.router.adapters.conversation_store import ConversationStore
from mailsync.router.adapters.directory_store import DirectoryStore
from mailsync.router.adapters.read_model_freshness import ReadModelFreshness
from mailsync.router.adapters.thread_store import ThreadStore
from mailsync.router.domain import (
    AttachmentPolicy,
    Filing,
    RoutingFacts,
    Skip,
    SubaccountFacts,
    conversation_id_for,
    message_id_for,
    message_key,
    route_message,
)
from mailsync.router.domain.identity import normalize_address, normalize_message_id

_EVENT_NAMESPACE = uuid.UUID("0d7c2b6e-31a4-4a7e-9c55-2f0c8b1e6d93")


@dataclass(frozen=True)
class Router:
    """The router's handlers and what they depend on."""

    directory: DirectoryStore
    connections: ConnectionStore
    threads: ThreadStore
    conversations: ConversationStore
    publisher: EventPublisher
    attachment_policies: Mapping[Provider, AttachmentPolicy]
    freshness: ReadModelFreshness | None = None
    """When set, a decision not to sync is only final once the read models are current (see its module)."""
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)

    async def ensure_indexes(self) -> None:
        """Create every index the handlers' queries rely on (idempotent; run at start-up)."""
        for store in (self.directory, self.connections, self.threads, self.conversations):
            await store.ensure_indexes()

    async def apply_directory_event(self, event: DirectoryEvent) -> None:
        """Update the directory read model (stale revisions are ignored)."""
        await self.directory.apply(event)

    async def apply_connection_change(self, event: ConnectionChanged) -> None:
        """Update which connections are bound to which mailbox, and since and until when."""
        await self.connections.apply(event)

    async def record_send_result(self, result: SendCompleted) -> None:
        """Tie a CRM email sent through a mailbox to its conversation and claim its thread (G1a, O1, M2, M3).

        Only individual emails sent through a mailbox start or continue a provider thread; other results
        (bulk or workflow mail through the subaccount provider, refusals, failures) change nothing here.
        """
        if (
            result.status != "sent"
            or result.route != "mailbox"
            or result.mailbox_id is None
            or result.provider_thread_id is None
            or result.provider_message_id is None
            or result.provider is None
            or result.contact_id is None
            or result.subaccount_id is None
        ):
            return
        conversation_id = conversation_id_for(result.subaccount_id, result.contact_id)
        at = result.occurred_at
        await self.threads.link(
            mailbox_id=result.mailbox_id,
            provider_thread_id=result.provider_thread_id,
            subaccount_id=result.subaccount_id,
            contact_id=result.contact_id,
            conversation_id=conversation_id,
            started_by="crm",
            at=at,
        )
        await self.threads.claim(
            mailbox_id=result.mailbox_id,
            provider_thread_id=result.provider_thread_id,
            subaccount_id=result.subaccount_id,
            rule="M3",
            at=at,
        )
        key = message_key(result.internet_message_id, result.mailbox_id, result.provider_message_id)
        await self.conversations.store(
            {
                "_id": message_id_for(conversation_id, key),
                "origin": "crm",
                "conversation_id": conversation_id,
                "subaccount_id": result.subaccount_id,
                "contact_id": result.contact_id,
                "connection_id": result.connection_id,
                "user_id": result.user_id,
                "mailbox_id": result.mailbox_id,
                "provider": result.provider,
                "provider_message_id": result.provider_message_id,
                "provider_thread_id": result.provider_thread_id,
                "internet_message_id": _rfc_id(result.internet_message_id),
                "direction": "outbound",
                "sent_at": at,
                "recorded_at": self.clock(),
            }
        )

    async def route_message(self, message: MessageIngested) -> None:
        """Decide where `message` belongs; store and announce its filings, report its skips."""
        facts = await self._facts(message)
        decision = route_message(message, facts)
        if decision.skips and self.freshness is not None:
            await self.freshness.wait_until_current(message.occurred_at)
            facts = await self._facts(message)
            decision = route_message(message, facts)
        if decision.filings:
            await self._file(message, decision.filings, facts)
        for skip in decision.skips:
            await self._report(message, skip)

    async def _facts(self, message: MessageIngested) -> RoutingFacts:
        """Everything the rules need, in two round trips: the mailbox's bindings, then the rest at once."""
        bindings = await self.connections.bindings_for(message.mailbox_id)
        subaccount_ids = sorted({b.subaccount_id for b in bindings})
        addresses = {
            normalize_address(a.email) for a in (message.from_, *message.to, *message.cc, *message.bcc)
        }
        references = [r for r in (message.in_reply_to, *message.references) if r]
        users, contacts, links, owner = await asyncio.gather(
            self.directory.users_in(subaccount_ids),
            self.directory.contacts_with(subaccount_ids, addresses),
            self.threads.links(message.mailbox_id, message.provider_thread_id, references),
            self.threads.owner(message.mailbox_id, message.provider_thread_id),
        )
        return RoutingFacts(
            bindings=tuple(bindings),
            subaccounts={
                s: SubaccountFacts(s, tuple(users.get(s, ())), tuple(contacts.get(s, ())), links.get(s))
                for s in subaccount_ids
            },
            thread_owner=owner,
            attachment_policies=self.attachment_policies,
        )

    async def _file(self, message: MessageIngested, filings: tuple[Filing, ...], facts: RoutingFacts) -> None:
        """Announce, then store, each filing not stored yet (a stored filing was announced before).

        A crash between the two announces the filing again on redelivery, under the same `event_id`.
        """
        now = self.clock()
        key = message_key(message.internet_message_id, message.mailbox_id, message.provider_message_id)
        message_ids = [message_id_for(f.conversation_id, key) for f in filings]
        stored = await self.conversations.existing(message_ids)
        await asyncio.gather(*(self._prepare(message, f, facts, now) for f in filings))
        pending = [(i, f) for i, f in zip(message_ids, filings, strict=True) if i not in stored]
        events = [(i, f, _recorded(i, message, f, now)) for i, f in pending]
        await asyncio.gather(
            *(self.publisher.publish(CONVERSATION_MESSAGES_RECORDED, e) for _, _, e in events)
        )
        await asyncio.gather(*(self.conversations.store(_document(i, message, f, e)) for i, f, e in events))

    async def _prepare(
        self, message: MessageIngested, filing: Filing, facts: RoutingFacts, now: datetime
    ) -> None:
        """Create the P6 contact and link the thread to the conversation, where not done yet."""
        if filing.new_contact is not None:
            await self.directory.create_contact(
                filing.subaccount_id, filing.contact_id, filing.new_contact.address, filing.user_id, now
            )
        if facts.subaccounts[filing.subaccount_id].thread is None:
            await self.threads.link(
                mailbox_id=message.mailbox_id,
                provider_thread_id=message.provider_thread_id,
                subaccount_id=filing.subaccount_id,
                contact_id=filing.contact_id,
                conversation_id=filing.conversation_id,
                started_by=filing.rule,
                at=message.received_at,
            )

    async def _report(self, message: MessageIngested, skip: Skip) -> None:
        key = message_key(message.internet_message_id, message.mailbox_id, message.provider_message_id)
        await self.publisher.publish(
            MESSAGES_NOT_SYNCED,
            MessageNotSynced(
                event_id=uuid.uuid5(_EVENT_NAMESPACE, f"{key}\x1f{skip.connection_id}\x1f{skip.reason}"),
                occurred_at=self.clock(),
                provider=message.provider,
                mailbox_id=message.mailbox_id,
                provider_message_id=message.provider_message_id,
                provider_thread_id=message.provider_thread_id,
                internet_message_id=message.internet_message_id,
                subaccount_id=skip.subaccount_id,
                connection_id=skip.connection_id,
                reason=skip.reason,
                detail=skip.detail,
            ),
        )


def _recorded(
    message_id: str, message: MessageIngested, filing: Filing, now: datetime
) -> ConversationMessageRecorded:
    return ConversationMessageRecorded(
        event_id=uuid.UUID(message_id),
        occurred_at=now,
        subaccount_id=filing.subaccount_id,
        contact_id=filing.contact_id,
        conversation_id=filing.conversation_id,
        message_id=message_id,
        connection_id=filing.connection_id,
        user_id=filing.user_id,
        provider=message.provider,
        provider_message_id=message.provider_message_id,
        provider_thread_id=message.provider_thread_id,
        internet_message_id=message.internet_message_id,
        direction=message.direction,
        subject=message.subject,
        from_=message.from_,
        to=message.to,
        cc=message.cc,
        sent_at=message.sent_at,
        snippet=message.snippet,
        body=message.body,
        attachments=message.attachments,
        contact_created=filing.new_contact is not None,
        recorded_at=now,
    )


def _rfc_id(internet_message_id: str | None) -> str | None:
    return normalize_message_id(internet_message_id) if internet_message_id else None


def _document(
    message_id: str, message: MessageIngested, filing: Filing, event: ConversationMessageRecorded
) -> Document:
    """What the read API serves for a filed message (and what RFC-id thread lookups use)."""
    fields = event.model_dump(
        mode="json", by_alias=True, exclude={"event_id", "event_type", "schema_version"}
    )
    return {
        **fields,
        "_id": message_id,
        "origin": "mailbox",
        "rule": filing.rule,
        "mailbox_id": message.mailbox_id,
        "internet_message_id": _rfc_id(message.internet_message_id),
        "sent_at": message.sent_at,
        "received_at": message.received_at,
        "recorded_at": event.recorded_at,
    }
