"""At-least-once consumption: retries for transient failures, dead letters for everything else.

Every subscriber of a mailsync broker runs inside `DeliveryMiddleware`, between FastStream's acknowledgement
middleware (policy `NACK_ON_ERROR`, so offsets are committed only after the handler returns) and the handler:

- The handler returns: the offset is committed.
- It raises `TransientError` (network, 5xx, 429, a database hiccup): it is retried in place with exponential
  backoff and full jitter, never sooner than the error's `retry_after`. When the attempts are used up the
  error
  propagates, the message is not committed and Kafka delivers it again, so the partition waits for the
  dependency instead of skipping work. Consumer lag shows the stall.
- The payload does not validate against the contract, the handler raises `PermanentError`, or it raises
  anything else (a bug): the message is published to the topic's dead-letter topic with the reason and the
  original bytes, then committed. Nothing is dropped silently, and one poison message never blocks a mailbox.
- Publishing the dead letter itself fails: the error propagates and the message is delivered again.

A batch subscriber (`batch=True`) gets the same rules per batch, and per record where it matters: a
transient failure retries the whole batch (handlers are idempotent, so records already applied are applied
again harmlessly); any other failure re-runs each record of the batch on its own, so only the records that
fail alone are dead-lettered and the rest of the batch is still applied.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from faststream import BaseMiddleware
from pydantic import ValidationError
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)

from mailsync.common.contracts import DeadLettered, dead_letter_topic, encode_payload

if TYPE_CHECKING:
    from aiokafka import ConsumerRecord
    from faststream._internal.context.repository import ContextRepo
    from faststream.message import StreamMessage

    from mailsync.common.metrics import CommonMetrics

logger = logging.getLogger(__name__)


class TransientError(Exception):
    """A failure that may pass: retry. `retry_after` (seconds) is the provider's or server's own hint."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(Exception):
    """A failure that retrying cannot fix; the message is dead-lettered with `reason` (a short code)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter, capped, honouring `TransientError.retry_after`."""

    max_attempts: int = 5
    initial_delay: float = 0.1
    max_delay: float = 30.0

    def wait(self, state: RetryCallState) -> float:
        """Seconds to sleep before the next attempt."""
        backoff = wait_random_exponential(multiplier=self.initial_delay, max=self.max_delay)(state)
        error = state.outcome.exception() if state.outcome else None
        hint = error.retry_after if isinstance(error, TransientError) and error.retry_after else 0.0
        return max(backoff, hint)

    def retrying(self, on_retry: Callable[[RetryCallState], None] | None = None) -> AsyncRetrying:
        """A tenacity controller that retries `TransientError` only and re-raises the last one."""
        return AsyncRetrying(
            stop=stop_after_attempt(self.max_attempts),
            wait=self.wait,
            retry=retry_if_exception_type(TransientError),
            before_sleep=on_retry,
            reraise=True,
        )


class DeadLetterPublish(Protocol):
    """Publishes a dead letter to `topic` (the physical name), keyed like the original message."""

    def __call__(self, letter: DeadLettered, *, topic: str, key: bytes | None) -> Awaitable[Any]: ...


@dataclass
class DeliveryPolicy:
    """Builds one `DeliveryMiddleware` per consumed message (FastStream's middleware factory protocol)."""

    service: str
    metrics: CommonMetrics
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    publish_dead_letter: DeadLetterPublish | None = None

    def __call__(self, msg: Any, /, *, context: ContextRepo) -> DeliveryMiddleware:
        return DeliveryMiddleware(msg, context=context, policy=self)


class DeliveryMiddleware(BaseMiddleware):
    """Runs one consumed message, or one batch, under the delivery rules in this module's docstring."""

    def __init__(self, msg: Any, /, *, context: ContextRepo, policy: DeliveryPolicy) -> None:
        super().__init__(msg, context=context)
        self._policy = policy

    async def consume_scope(self, call_next: Callable[[Any], Awaitable[Any]], msg: StreamMessage[Any]) -> Any:
        """Call the handler with retries; dead-letter what cannot succeed; re-raise what may later."""
        if not isinstance(msg.raw_message, tuple):
            return await self._consume(call_next, msg, msg.raw_message)
        records: tuple[ConsumerRecord[Any, Any], ...] = msg.raw_message
        try:
            return await self._attempt(call_next, msg, records[0], _Failure())
        except TransientError:
            raise
        except Exception as error:
            logger.warning(
                "batch failed; applying its records one by one",
                extra={
                    "topic": records[0].topic,
                    "records": len(records),
                    "error_type": type(error).__name__,
                },
                exc_info=True,
            )
        for record in records:
            await self._consume(call_next, _single(msg, record), record)
        return None

    async def _consume(
        self,
        call_next: Callable[[Any], Awaitable[Any]],
        msg: StreamMessage[Any],
        record: ConsumerRecord[Any, Any],
    ) -> Any:
        """Run `msg` (one record, or a batch of just `record`); dead-letter `record` if it cannot succeed."""
        failure = _Failure()
        try:
            return await self._attempt(call_next, msg, record, failure)
        except TransientError:
            raise
        except ValidationError as error:
            await self._dead_letter(record, "invalid_payload", error, failure)
        except PermanentError as error:
            await self._dead_letter(record, error.reason, error, failure)
        except Exception as error:
            logger.exception(
                "handler raised an unexpected error", extra={"topic": record.topic, "offset": record.offset}
            )
            await self._dead_letter(record, "unexpected_error", error, failure)
        return None

    async def _attempt(
        self,
        call_next: Callable[[Any], Awaitable[Any]],
        msg: StreamMessage[Any],
        record: ConsumerRecord[Any, Any],
        failure: _Failure,
    ) -> Any:
        """Call the handler, retrying transient errors; record in `failure` when and how often it failed."""
        topic: str = record.topic

        def count_retry(state: RetryCallState) -> None:
            self._policy.metrics.handler_retries.labels(self._policy.service, topic).inc()
            logger.warning(
                "handler failed transiently; retrying",
                extra={"topic": topic, "offset": record.offset, "attempt": state.attempt_number},
            )

        try:
            async for attempt in self._policy.retry.retrying(count_retry):
                with attempt:
                    failure.attempts += 1
                    try:
                        return await call_next(msg)
                    except Exception:
                        failure.first_failed_at = failure.first_failed_at or datetime.now(UTC)
                        raise
        except TransientError:
            logger.warning(
                "transient failure outlasted retries; leaving the offset uncommitted for redelivery",
                extra={"topic": topic, "offset": record.offset},
            )
            raise
        return None

    async def _dead_letter(
        self, record: ConsumerRecord[Any, Any], reason: str, error: BaseException, failure: _Failure
    ) -> None:
        publish = self._policy.publish_dead_letter
        if publish is None:
            raise RuntimeError("no dead-letter publisher configured") from error
        payload, encoding = encode_payload(record.value or b"")
        now = datetime.now(UTC)
        letter = DeadLettered(
            service=self._policy.service,
            original_topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key.decode("utf-8", "replace") if record.key else None,
            payload=payload,
            payload_encoding=encoding,
            headers={k: v.decode("utf-8", "replace") for k, v in (record.headers or ())},
            error_type=f"{type(error).__module__}.{type(error).__qualname__}",
            reason=f"{reason}: {error}"[:8000],
            attempts=max(failure.attempts, 1),
            first_failed_at=failure.first_failed_at or now,
            dead_lettered_at=now,
        )
        await publish(letter, topic=dead_letter_topic(record.topic), key=record.key)
        self._policy.metrics.dead_lettered.labels(self._policy.service, record.topic, reason).inc()
        logger.error(
            "message dead-lettered",
            extra={
                "topic": record.topic,
                "offset": record.offset,
                "reason": reason,
                "error_type": type(error).__name__,
            },
        )


@dataclass
class _Failure:
    """How often a message's handler ran, and when it first failed (for its dead letter)."""

    attempts: int = 0
    first_failed_at: datetime | None = None


def _single(batch: StreamMessage[Any], record: ConsumerRecord[Any, Any]) -> StreamMessage[Any]:
    """A copy of `batch` that carries only `record` (the handler then gets a one-element list)."""
    single = copy.copy(batch)
    single.raw_message = (record,)
    single.body = [record.value or b""]
    single.batch_headers = [{k: v.decode("utf-8", "replace") for k, v in (record.headers or ())}]
    single.headers = single.batch_headers[0]
    return single
