"""Retrying one provider call in place: exponential backoff with full jitter, never sooner than Retry-After.

Before repeating a call whose outcome is unknown (a timeout after the request was written, a dropped
connection, a 5xx), the caller's `check` is asked whether the call took effect, so a send is never repeated
once it went out. When the attempts run out, `RetriesExhaustedError` says whether the outcome is still
unknown: the routes then leave the command unanswered (transient) instead of reporting a failure.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from mailsync.common.delivery import TransientError
from mailsync.sender.adapters.delivery_errors import DeliveryRejectedError, RetryableDeliveryError

logger = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class RetrySchedule:
    """Exponential backoff with full jitter; gives up after `max_attempts` or on a too-long Retry-After."""

    max_attempts: int = 4
    initial_seconds: float = 0.5
    max_seconds: float = 30.0
    settle_seconds: float = 5.0
    """Least wait after a call whose outcome is unknown, so a request still being processed has finished
    before the sender looks for its effect."""

    def delay(
        self, attempt: int, retry_after: float | None, *, outcome_unknown: bool = False
    ) -> float | None:
        """Seconds to wait after failed attempt number `attempt` (1-based), or None to give up."""
        if attempt >= self.max_attempts or (retry_after is not None and retry_after > self.max_seconds):
            return None
        ceiling = min(self.max_seconds, self.initial_seconds * 2 ** (attempt - 1))
        backoff = random.uniform(0, ceiling)  # noqa: S311 - jitter, not cryptography
        return max(backoff, retry_after or 0.0, self.settle_seconds if outcome_unknown else 0.0)


class RetriesExhaustedError(Exception):
    """Transient failures outlasted the schedule; `outcome_unknown` if the call may have taken effect."""

    def __init__(self, detail: str, *, outcome_unknown: bool) -> None:
        super().__init__(detail)
        self.detail = detail
        self.outcome_unknown = outcome_unknown


@dataclass(frozen=True)
class Retrier:
    """Runs provider calls under a `RetrySchedule`."""

    schedule: RetrySchedule = field(default_factory=RetrySchedule)
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep

    async def run(
        self, call: Callable[[], Awaitable[T]], *, check: Callable[[], Awaitable[T | None]] | None = None
    ) -> T:
        """Run `call`, retrying transient failures; before repeating a call whose outcome is unknown, ask
        `check` whether it took effect (and return what it found)."""
        unknown = False
        attempt = 0
        while True:
            attempt += 1
            try:
                if unknown and check is not None:
                    found = await check()
                    if found is not None:
                        return found
                    unknown = False
                return await call()
            except RetryableDeliveryError as error:
                unknown = unknown or error.outcome_unknown
                delay = self.schedule.delay(attempt, error.retry_after, outcome_unknown=error.outcome_unknown)
                if delay is None:
                    raise RetriesExhaustedError(error.detail, outcome_unknown=unknown) from error
                logger.warning(
                    "provider call failed transiently; retrying",
                    extra={"attempt": attempt, "delay": round(delay, 3), "detail": error.detail},
                )
                await self.sleep(delay)

    async def lookup(self, call: Callable[[], Awaitable[T]]) -> T:
        """A read-only provider lookup (a thread, a sent copy); its failures are transient for the whole
        command, which is retried later."""
        try:
            return await self.run(call)
        except (RetriesExhaustedError, DeliveryRejectedError) as error:
            raise TransientError(f"mailbox lookup failed: {error}") from error
