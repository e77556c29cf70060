"""Answering send commands, a batch at a time: exactly one `SendCompleted` per command, stored before it is
published, and the same stored result for every later delivery of a request id (S7).

For one batch (the records one poll of the command topic returned, in offset order):

1. Parse every record; a record without a usable `request_id` cannot be answered, and the batch raises
   `PermanentError` before doing anything (the delivery middleware then runs each record alone, so only that
   record is dead-lettered).
2. Claim the batch's request ids in `send_requests` (one read, one insert). A request already answered is not
   worked on again.
3. Decide every unanswered request concurrently (at most `concurrency` at a time), in the order
   `plan_batch` keeps (a request id once; a reply after its sender's earlier commands): refuse what cannot be
   sent, route (S1, S2, C4, C5, C6), then the Gmail, Outlook or subaccount route sends it.
4. Store each new result as soon as it is decided (stores made at the same time go as one bulk write; the
   first result stored for a request wins) and publish the stored result. Then publish the stored result of
   every other record of the batch (a request answered before, a request id repeated), all acknowledged
   before the batch's offsets are committed.

If some command failed transiently (MongoDB, Kafka, a provider outage whose outcome is unknown, another
instance's lease), the results of the others are still stored and published, then the batch raises
`TransientError`: it is retried, and the commands already answered only republish their stored results. A
bug before the provider was called answers `failed`/`internal_error`; after it, the error propagates (the
outcome is unknown and must not be reported as a failure).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka.errors import KafkaError
from pymongo.errors import PyMongoError

from mailsync.common.contracts import (
    SEND_RESULTS,
    ConnectionChanged,
    SendCompleted,
    SendEmail,
    SendFailureReason,
)
from mailsync.common.delivery import PermanentError, TransientError
from mailsync.common.kafka import EventPublisher
from mailsync.sender.adapters.connection_store import ConnectionStore
from mailsync.sender.adapters.send_records import SendRecord, SendRecordStore
from mailsync.sender.domain import (
    BatchItem,
    InvalidCommand,
    MailboxConnection,
    Refusal,
    ThroughMailbox,
    choose_route,
    invalid_command_result,
    not_sent,
    parse_command,
    plan_batch,
    validate_command,
)
from mailsync.sender.handlers.attempts import Attempts, Progress
from mailsync.sender.handlers.gmail import GmailRoute
from mailsync.sender.handlers.outlook import OutlookRoute
from mailsync.sender.handlers.subaccount import SubaccountRoute
from mailsync.sender.metrics import SenderMetrics

logger = logging.getLogger(__name__)

_STORE_ERRORS = (PyMongoError, KafkaError)

ConnectionLookup = Callable[[str, str], Awaitable[MailboxConnection | None]]


@dataclass(frozen=True)
class Sender:
    """The sender's handlers: send commands, and the connection read model they route by."""

    records: SendRecordStore
    connections: ConnectionStore
    attempts: Attempts
    gmail: GmailRoute
    outlook: OutlookRoute
    subaccount: SubaccountRoute
    publisher: EventPublisher
    metrics: SenderMetrics
    concurrency: int = 16

    async def ensure_indexes(self) -> None:
        """Create every index the handlers rely on (idempotent; run at start-up)."""
        await self.attempts.ledger.ensure_indexes()
        await self.connections.ensure_indexes()

    async def apply_connection_change(self, event: ConnectionChanged) -> None:
        """Keep the read model of which mailbox a user's connection sends through (C4, C5, C6)."""
        try:
            await self.connections.apply(event)
        except PyMongoError as error:
            raise TransientError(f"MongoDB: {error}") from error

    async def send_email(self, payload: dict[str, Any]) -> None:
        """Answer the `SendEmail` in `payload` (a batch of one)."""
        await self.send_emails([payload])

    async def send_emails(self, payloads: Sequence[dict[str, Any]]) -> None:
        """Answer each `SendEmail` in `payloads` (one batch, in offset order); see the module docstring."""
        commands = [parse_command(payload) for payload in payloads]
        request_ids: list[str] = []
        for command in commands:
            if command.request_id is None:
                detail = command.detail if isinstance(command, InvalidCommand) else ""
                raise PermanentError("unanswerable_command", detail)
            request_ids.append(command.request_id)
        try:
            records = await self.records.claim_all(request_ids, self.attempts.clock())
            answered, failures = await self._decide_all(commands, records)
            # Every other record of the batch: a request answered before, or a request id the batch repeats.
            remaining = Counter(request_ids) - Counter(answered.keys())
            others = [answered.get(r) or records[r].result for r in remaining.elements()]
            await asyncio.gather(
                *(self.publisher.publish(SEND_RESULTS, answer) for answer in others if answer is not None)
            )
        except _STORE_ERRORS as error:
            raise TransientError(f"{type(error).__name__}: {error}") from error
        if failures:
            raise _worst(failures)

    async def _conclude(self, result: SendCompleted) -> SendCompleted:
        """Store `result` unless its request has one already, and publish the stored one."""
        stored = await self.records.complete(result)
        if stored is result:
            self.metrics.results.labels(result.status, result.route or "", result.reason or "").inc()
        await self.publisher.publish(SEND_RESULTS, stored)
        return stored

    async def _decide_all(
        self, commands: list[SendEmail | InvalidCommand], records: dict[str, SendRecord]
    ) -> tuple[dict[str, SendCompleted], list[BaseException]]:
        """Answer each unanswered request of the batch as soon as it is decided (its result stored, then
        published): the answers by request id, and the failures of the requests left unanswered."""
        plan = plan_batch([_item(command) for command in commands])
        lookup = _memoized(self.connections.current_for)
        slots = asyncio.Semaphore(self.concurrency)
        tasks: dict[int, asyncio.Task[SendCompleted | None]] = {}

        async def decide(position: int) -> SendCompleted | None:
            command = commands[position]
            record = records[str(command.request_id)]
            if record.result is not None:
                return None
            earlier = [tasks[p] for p in plan.waits_for.get(position, ())]
            if earlier:
                await asyncio.wait(earlier)
                if any(t.cancelled() or t.exception() is not None for t in earlier):
                    raise TransientError(f"{command.request_id} waits for an earlier command of its sender")
            async with slots:
                result = await self._answer(command, record, lookup)
            try:
                return await self._conclude(result)
            except _STORE_ERRORS as error:
                raise TransientError(f"{type(error).__name__}: {error}") from error

        for position in plan.work:
            tasks[position] = asyncio.create_task(decide(position))
        outcomes = await asyncio.gather(*tasks.values(), return_exceptions=True)
        answered = {o.request_id: o for o in outcomes if isinstance(o, SendCompleted)}
        failures = [o for o in outcomes if isinstance(o, BaseException)]
        return answered, failures

    async def _answer(
        self, command: SendEmail | InvalidCommand, record: SendRecord, lookup: ConnectionLookup
    ) -> SendCompleted:
        """The result of one unanswered request."""
        request_id = record.request_id
        if isinstance(command, InvalidCommand):
            return invalid_command_result(command, request_id, at=self.attempts.clock())
        progress = Progress(quota_key=record.quota_key, attempted=record.state == "attempting")
        try:
            return await self._route(command, record, progress, lookup)
        except (TransientError, *_STORE_ERRORS):
            raise
        except Exception as error:
            if progress.attempted:
                raise
            logger.exception("unexpected error before sending", extra={"request_id": request_id})
            await self.attempts.release(progress, request_id)
            return not_sent(
                command,
                Refusal(SendFailureReason.INTERNAL_ERROR, f"Unexpected error: {type(error).__name__}"),
                attempted=True,
                at=self.attempts.clock(),
            )

    async def _route(
        self, command: SendEmail, record: SendRecord, progress: Progress, lookup: ConnectionLookup
    ) -> SendCompleted:
        """Refuse what cannot be sent, else send it the way routing says (S1, S2, C4, C5, C6)."""
        refusal = validate_command(command)
        if refusal is not None:
            return not_sent(command, refusal, attempted=False, at=self.attempts.clock())
        connection = None
        if command.kind == "individual" and command.user_id is not None:
            connection = await lookup(command.subaccount_id, command.user_id)
        route = choose_route(command, connection)
        if isinstance(route, Refusal):
            return not_sent(
                command,
                route,
                attempted=False,
                at=self.attempts.clock(),
                route="mailbox",
                connection=connection,
            )
        if not isinstance(route, ThroughMailbox) or record.attempted_route == "subaccount_provider":
            # An earlier delivery that handed it to the subaccount provider finishes that way.
            return await self.subaccount.send(command, progress)
        if route.connection.provider == "outlook":
            return await self.outlook.send(
                command, route.connection, progress, record.attempted_internet_message_id
            )
        return await self.gmail.send(command, route.connection, progress)


def _item(command: SendEmail | InvalidCommand) -> BatchItem:
    if isinstance(command, InvalidCommand):
        return BatchItem(str(command.request_id), sender=None, is_reply=False)
    sender = (command.subaccount_id, command.user_id or "")
    return BatchItem(command.request_id, sender=sender, is_reply=command.reply_context is not None)


def _memoized(lookup: ConnectionLookup) -> ConnectionLookup:
    """`lookup` asked once per (subaccount, user) for the batch, however many of its commands need it."""
    pending: dict[tuple[str, str], asyncio.Task[MailboxConnection | None]] = {}

    async def once(subaccount_id: str, user_id: str) -> MailboxConnection | None:
        key = (subaccount_id, user_id)
        if key not in pending:
            pending[key] = asyncio.ensure_future(lookup(subaccount_id, user_id))
        return await asyncio.shield(pending[key])

    return once


def _worst(failures: list[BaseException]) -> BaseException:
    """The failure the batch raises: a non-transient one first (the middleware isolates records for it),
    else a transient one (the batch is retried)."""
    for failure in failures:
        if not isinstance(failure, (TransientError, *_STORE_ERRORS)):
            return failure
    failure = failures[0]
    if isinstance(failure, _STORE_ERRORS):
        return TransientError(f"{type(failure).__name__}: {failure}")
    return failure
