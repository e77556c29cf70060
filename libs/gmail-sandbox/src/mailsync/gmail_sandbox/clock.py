"""Injectable time source.

Everything in the sandbox that depends on time (token expiry, history retention, quota windows, the daily
sending limit, the one-notification-per-second cap) reads it from a :class:`Clock`, so tests move time forward
with :class:`ManualClock` instead of sleeping.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from typing import Protocol


class Clock(Protocol):
    """A source of wall-clock time (epoch seconds) with a matching ``sleep``."""

    def now(self) -> float:
        """Return the current time in seconds since the epoch."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Suspend the caller until ``now()`` has advanced by at least ``seconds``."""
        ...


class SystemClock:
    """The real clock: ``time.time`` and ``asyncio.sleep``."""

    def now(self) -> float:
        """Return ``time.time()``."""
        return time.time()

    async def sleep(self, seconds: float) -> None:
        """Sleep on the running event loop."""
        await asyncio.sleep(max(0.0, seconds))


class ManualClock:
    """A clock that only moves when :meth:`advance` is called.

    Sleepers are woken in deadline order once the clock has reached their deadline. ``advance`` yields to the
    event loop a few times afterwards so that woken coroutines run before it returns.
    """

    def __init__(self, start: float = 1_767_225_600.0) -> None:
        self._now = start
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._counter = itertools.count()

    def now(self) -> float:
        """Return the simulated time."""
        return self._now

    async def sleep(self, seconds: float) -> None:
        """Wait until the simulated time has advanced by ``seconds`` (returns at once for ``seconds <=
        0``)."""
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now + seconds, next(self._counter), future))
        await future

    async def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``, wake every sleeper whose deadline has passed, and let them
        run."""
        if seconds < 0:
            raise ValueError("time only moves forward")
        self._now += seconds
        while self._sleepers and self._sleepers[0][0] <= self._now:
            _, _, future = heapq.heappop(self._sleepers)
            if not future.done():
                future.set_result(None)
        for _ in range(20):
            await asyncio.sleep(0)
