"""Many concurrent single-document writes as one bulk round trip.

The MongoDB-wire servers the sender runs against spend most of a write's cost per request, not per
document; commands decided concurrently reach the same step (fix the quota day, reserve quota, journal the
attempt) at nearly the same time. A `Coalescer` keeps at most one bulk in flight: operations that arrive
while it runs wait and go together in the next one. Each caller still gets its own operation's outcome, and
an error of the bulk is raised to every caller in it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

Op = TypeVar("Op")
Outcome = TypeVar("Outcome")


class Coalescer(Generic[Op, Outcome]):
    """Runs operations through `run_bulk`, which takes a list of them and returns their outcomes in order."""

    def __init__(self, run_bulk: Callable[[list[Op]], Awaitable[Sequence[Outcome]]]) -> None:
        self._run_bulk = run_bulk
        self._queue: list[tuple[Op, asyncio.Future[Outcome]]] = []
        self._runner: asyncio.Task[None] | None = None

    async def submit(self, op: Op) -> Outcome:
        """The outcome of `op`, run in the next bulk."""
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._queue.append((op, future))
        if self._runner is None or self._runner.done():
            self._runner = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        while self._queue:
            bulk, self._queue = self._queue, []
            try:
                outcomes = await self._run_bulk([op for op, _ in bulk])
            except Exception as error:  # noqa: BLE001 - handed to every caller of the bulk
                for _, future in bulk:
                    if not future.done():
                        future.set_exception(error)
                continue
            except BaseException:
                for _, future in bulk + self._queue:
                    future.cancel()
                self._queue = []
                raise
            for (_, future), outcome in zip(bulk, outcomes, strict=True):
                if not future.done():
                    future.set_result(outcome)
