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
from collections.abc import Callable, Mapping, Sequence
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
from mailsync.router.adapters.thread_store import ThreadStore, link_document
from mailsync.router.domain import (
    AttachmentPolicy,
    Filing,
    Skip,
    conversation_id_for,
    message_id_for,
    message_key,
)
from mailsync.router.domain.batch import BatchFacts, Routed, addresses_of, references_of, route_batch
from mailsync.router.domain.identity import normalize_message_id

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
    apply_part: int = 250
    """Filings announced together; each part is stored while the next is announced."""
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
        await self.route_messages([message])

    async def route_messages(self, messages: Sequence[MessageIngested]) -> None:
        """Route a batch in order with facts loaded once (see `domain.batch`); apply it in a few writes.

        The first batch waits until the read models have applied the backlog they had at start-up. If any
        message would not sync, the decision is only final once the read models are current: wait for them,
        reload the facts and route the batch again.
        """
        if self.freshness is not None:
            await self.freshness.wait_until_caught_up()
        now = self.clock()
        routed = route_batch(messages, await self._batch_facts(messages), now)
        skipped_at = [r.message.occurred_at for r in routed if r.decision.skips]
        if skipped_at and self.freshness is not None:
            await self.freshness.wait_until_current(max(skipped_at))
            routed = route_batch(messages, await self._batch_facts(messages), now)
        await self._apply(routed, now)

    async def _batch_facts(self, messages: Sequence[MessageIngested]) -> BatchFacts:
        """Everything the batch's rules need, in two rounds of concurrent queries.

        What depends only on the messages (bindings, thread claims, referenced messages) is asked first;
        what depends on the bindings' subaccounts (users, contacts, thread links) second.
        """
        threads = {(m.mailbox_id, m.provider_thread_id) for m in messages}
        references: dict[str, list[str]] = {}
        for m in messages:
            references.setdefault(m.mailbox_id, []).extend(references_of(m))
        bindings, filed, owners = await asyncio.gather(
            self.connections.bindings_of(m.mailbox_id for m in messages),
            self.threads.filed_with(references),
            self.threads.owners_of(threads),
        )
        subaccounts = {
            m.mailbox_id: sorted({b.subaccount_id for b in bindings.get(m.mailbox_id, ())}) for m in messages
        }
        all_subaccounts = sorted({s for ids in subaccounts.values() for s in ids})
        users, contacts, links = await asyncio.gather(
            self.directory.users_in(all_subaccounts),
            self.directory.contacts_with(all_subaccounts, {a for m in messages for a in addresses_of(m)}),
            self.threads.links_of(
                (mailbox, thread, s) for mailbox, thread in threads for s in subaccounts[mailbox]
            ),
        )
        return BatchFacts(
            bindings=bindings,
            users=users,
            contacts=[(s, c) for s, found in contacts.items() for c in found],
            thread_links=links,
            filed=filed,
            thread_owners=owners,
            attachment_policies=self.attachment_policies,
        )

    async def _apply(self, routed: list[Routed], now: datetime) -> None:
        """Create P6 contacts and first thread links, announce then store new filings, report skips.

        A filing already stored was announced before and is skipped; a crash between announcing and storing
        announces it again on redelivery, under the same `event_id`. Every filing is looked up, also one that
        links its thread for the first time: the same email reaching two mailboxes of a subaccount is one
        stored message (D2) in two threads. Contacts and links are written while the filings are announced:
        both only have to be in place before the batch is committed. The filings go in parts of
        `apply_part`, each stored while the next is announced.
        """
        filings = [
            (r, f, message_id_for(f.conversation_id, _key(r.message)))
            for r in routed
            for f in r.decision.filings
        ]
        stored = await self.conversations.existing([message_id for _, _, message_id in filings])
        announced: set[str] = set()
        stores: list[asyncio.Future[int]] = []
        try:
            for start in range(0, len(filings), self.apply_part):
                part = filings[start : start + self.apply_part]
                pending = []
                for r, f, message_id in part:
                    if message_id not in stored and message_id not in announced:
                        announced.add(message_id)
                        pending.append((message_id, r, f, _recorded(message_id, r.message, f, now)))
                await asyncio.gather(
                    self._prepare(part, now),
                    self.publisher.publish_all(CONVERSATION_MESSAGES_RECORDED, [e for *_, e in pending]),
                )
                documents = [_document(i, r.message, f, e) for i, r, f, e in pending]
                stores.append(asyncio.ensure_future(self.conversations.store_many(documents)))
            await asyncio.gather(*stores)
        except BaseException:
            for store in stores:
                store.cancel()
            await asyncio.gather(*stores, return_exceptions=True)
            raise
        await self.publisher.publish_all(
            MESSAGES_NOT_SYNCED,
            [self._not_synced(r.message, skip) for r in routed for skip in r.decision.skips],
        )

    async def _prepare(self, filings: list[tuple[Routed, Filing, str]], now: datetime) -> None:
        """Create the P6 contacts and write the thread links the filings introduce."""
        contacts = {(f.subaccount_id, f.contact_id): f for _, f, _ in filings if f.new_contact is not None}
        links = [
            link_document(
                mailbox_id=r.message.mailbox_id,
                provider_thread_id=r.message.provider_thread_id,
                subaccount_id=f.subaccount_id,
                contact_id=f.contact_id,
                conversation_id=f.conversation_id,
                started_by=f.rule,
                at=r.message.received_at,
            )
            for r, f, _ in filings
            if f.subaccount_id in r.new_links
        ]
        await asyncio.gather(
            self.threads.link_many(links),
            *(
                self.directory.create_contact(
                    f.subaccount_id, f.contact_id, f.new_contact.address, f.user_id, now
                )
                for f in contacts.values()
                if f.new_contact is not None
            ),
        )

    def _not_synced(self, message: MessageIngested, skip: Skip) -> MessageNotSynced:
        key = _key(message)
        return MessageNotSynced(
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
        )


def _key(message: MessageIngested) -> str:
    return message_key(message.internet_message_id, message.mailbox_id, message.provider_message_id)


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
