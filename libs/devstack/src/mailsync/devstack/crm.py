"""The CRM's side of mailsync's public contract, for the e2e suite and the local demo.

A `Crm` publishes what the CRM publishes (directory events and `SendEmail` commands on Kafka, keyed and
labelled as the topic contracts say), reads what mailsync publishes for the CRM (send results, filed
messages, messages not synced, connection changes) from the beginning of those topics, and reads a contact's
conversation from the router's HTTP API. It never touches a service's database or code.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Self

import aiohttp
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError

from mailsync.common.contracts import (
    CONNECTIONS_CHANGED,
    CONVERSATION_MESSAGES_RECORDED,
    CRM_DIRECTORY,
    MESSAGES_NOT_SYNCED,
    SEND_COMMANDS,
    SEND_RESULTS,
    Address,
    ConnectionChanged,
    ContactUpserted,
    ConversationMessageRecorded,
    Event,
    MessageBody,
    MessageNotSynced,
    ReplyContext,
    SendCompleted,
    SendEmail,
    SendKind,
    SubaccountUserUpserted,
    contract_for,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from types import TracebackType

    from mailsync.devstack.product import ProductEndpoints

_READ_TOPICS = (SEND_RESULTS, CONVERSATION_MESSAGES_RECORDED, MESSAGES_NOT_SYNCED, CONNECTIONS_CHANGED)


class CrmTimeoutError(AssertionError):
    """What the CRM waited for did not happen in time (an assertion failure in tests)."""


class Crm:
    """Publishes CRM events and commands, and collects mailsync's answers. Use as an async context manager."""

    def __init__(self, endpoints: ProductEndpoints) -> None:
        """Configure; nothing connects until `start`."""
        self.endpoints = endpoints
        self._revisions = itertools.count(time.time_ns())
        self._producer = AIOKafkaProducer(
            bootstrap_servers=endpoints.kafka_bootstrap_servers,
            client_id="crm-stand-in",
            enable_idempotence=True,
            acks="all",
        )
        self._consumer = AIOKafkaConsumer(
            *(endpoints.topic(t) for t in _READ_TOPICS),
            bootstrap_servers=endpoints.kafka_bootstrap_servers,
            client_id="crm-stand-in",
            group_id=None,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            metadata_max_age_ms=1000,
        )
        self.results: dict[str, SendCompleted] = {}
        self.recorded: list[ConversationMessageRecorded] = []
        self.not_synced: list[MessageNotSynced] = []
        self.connection_changes: list[ConnectionChanged] = []
        self._reader: asyncio.Task[None] | None = None
        self._http: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        """Connect the producer and start reading mailsync's output topics from their beginning."""
        await self._producer.start()
        await self._consumer.start()
        self._reader = asyncio.create_task(self._read(), name="crm-reader")
        self._http = aiohttp.ClientSession()

    async def close(self) -> None:
        """Stop reading and disconnect.

        The client may have been idle on an event loop that did not run for a while (a session-wide test
        fixture between other tests): its pending fetch then fails or is cancelled while closing, which is
        of no consequence any more and does not fail the close.
        """
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, KafkaError):
                await self._reader
            self._reader = None
        try:
            await self._consumer.stop()
        except (KafkaError, asyncio.CancelledError):
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise
        await self._producer.stop()
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def _read(self) -> None:
        async for record in self._consumer:
            topic = record.topic.removeprefix(self.endpoints.topic_prefix)
            if record.value is None:
                continue
            event = contract_for(topic).parse(record.value)
            if isinstance(event, SendCompleted):
                self.results.setdefault(event.request_id, event)  # the first result per request wins (S7)
            elif isinstance(event, ConversationMessageRecorded):
                self.recorded.append(event)
            elif isinstance(event, MessageNotSynced):
                self.not_synced.append(event)
            elif isinstance(event, ConnectionChanged):
                self.connection_changes.append(event)

    async def publish(self, topic: str, event: Event) -> None:
        """Publish `event` on contract topic `topic` with the contract's key and headers."""
        contract = contract_for(topic)
        await self._producer.send_and_wait(
            self.endpoints.topic(topic),
            value=event.model_dump_json(by_alias=True).encode(),
            key=contract.key_of(event).encode(),
            headers=[("content-type", b"application/json"), ("event-type", event.event_type.encode())],
        )

    async def upsert_user(
        self,
        subaccount_id: str,
        user_id: str,
        email_addresses: Sequence[str],
        *,
        bcc_address: str | None = None,
        display_name: str | None = None,
    ) -> None:
        """The CRM created or changed a user of a subaccount."""
        await self.publish(
            CRM_DIRECTORY,
            SubaccountUserUpserted(
                subaccount_id=subaccount_id,
                user_id=user_id,
                email_addresses=tuple(email_addresses),
                bcc_address=bcc_address,
                display_name=display_name,
                revision=next(self._revisions),
            ),
        )

    async def upsert_contact(
        self,
        subaccount_id: str,
        contact_id: str,
        email_addresses: Sequence[str],
        *,
        assigned_user_id: str | None,
        created_at: datetime | None = None,
    ) -> None:
        """The CRM created or changed a contact."""
        await self.publish(
            CRM_DIRECTORY,
            ContactUpserted(
                subaccount_id=subaccount_id,
                contact_id=contact_id,
                email_addresses=tuple(email_addresses),
                assigned_user_id=assigned_user_id,
                created_at=created_at or datetime.now(UTC),
                revision=next(self._revisions),
            ),
        )

    async def send_email(
        self,
        *,
        subaccount_id: str,
        to: Sequence[str],
        subject: str,
        text: str,
        kind: SendKind = "individual",
        user_id: str | None = None,
        contact_id: str | None = None,
        reply_context: ReplyContext | None = None,
        request_id: str | None = None,
    ) -> str:
        """Publish a `SendEmail` command; return its request id."""
        command = SendEmail(
            request_id=request_id or f"crm:{uuid.uuid4()}",
            kind=kind,
            subaccount_id=subaccount_id,
            user_id=user_id,
            contact_id=contact_id,
            to=tuple(Address(email=address) for address in to),
            subject=subject,
            body=MessageBody(text=text),
            reply_context=reply_context,
            requested_at=datetime.now(UTC),
        )
        await self.publish(SEND_COMMANDS, command)
        return command.request_id

    async def result(self, request_id: str, *, within: float = 30.0) -> SendCompleted:
        """The `SendCompleted` of `request_id`, once it is on the results topic."""
        await self.wait_until(
            lambda: request_id in self.results, within=within, what=f"the result of {request_id}"
        )
        return self.results[request_id]

    async def conversation(self, subaccount_id: str, contact_id: str) -> list[dict[str, Any]]:
        """The contact's conversation as the router's read API serves it, oldest first."""
        if self._http is None:
            raise RuntimeError("Crm.start() first")
        url = (
            f"{self.endpoints.router_url}/v1/subaccounts/{subaccount_id}/contacts/{contact_id}/messages"
            "?limit=500&order=asc"
        )
        async with self._http.get(url) as response:
            response.raise_for_status()
            body: dict[str, Any] = await response.json()
        return list(body["messages"])

    async def conversation_with(
        self,
        subaccount_id: str,
        contact_id: str,
        condition: Callable[[list[dict[str, Any]]], bool],
        *,
        within: float = 30.0,
    ) -> list[dict[str, Any]]:
        """Poll the conversation until `condition` holds for it; return it."""
        deadline = time.monotonic() + within
        while True:
            messages = await self.conversation(subaccount_id, contact_id)
            if condition(messages):
                return messages
            if time.monotonic() > deadline:
                raise CrmTimeoutError(
                    f"conversation {subaccount_id}/{contact_id} not as expected within {within} s: {messages}"
                )
            await asyncio.sleep(0.2)

    @staticmethod
    async def wait_until(
        condition: Callable[[], bool], *, within: float = 30.0, what: str = "condition"
    ) -> None:
        """Poll `condition` every 0.1 s; raise `CrmTimeoutError` after `within` seconds."""
        deadline = time.monotonic() + within
        while not condition():
            if time.monotonic() > deadline:
                raise CrmTimeoutError(f"{what} not met within {within} s")
            await asyncio.sleep(0.1)
