"""The per-mailbox pacer, on an injected clock: no window of the limit's length ever holds more requests than
the limit, a long catch-up still runs at >= 95% of it, bursts pass at once, and mailboxes are independent."""

from __future__ import annotations

import bisect

import pytest

from mailsync.ingest_outlook.adapters.pacing import MailboxPacer


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


def _max_in_any_window(times: list[float], window: float) -> int:
    # every window that holds the most requests can be moved to start at one of them
    return max(bisect.bisect_left(times, start + window) - i for i, start in enumerate(times))


async def test_a_long_catch_up_runs_just_under_the_window_limit() -> None:
    fake = FakeTime()
    pacer = MailboxPacer(1000, 60.0, clock=fake.clock, sleep=fake.sleep)
    sent: list[float] = []
    for _ in range(5000):
        await pacer.acquire("outlook:a")
        sent.append(fake.now)
        fake.now += 0.001  # each request takes 1 ms of the worker's time

    assert _max_in_any_window(sent, 60.0) <= 1000
    achieved = len(sent) / (sent[-1] - sent[0]) / (1000 / 60)
    assert achieved >= 0.95
    assert pacer.waited_seconds > 0


async def test_a_burst_within_the_allowance_is_not_slowed_and_mailboxes_are_independent() -> None:
    fake = FakeTime()
    pacer = MailboxPacer(10_000, 600.0, clock=fake.clock, sleep=fake.sleep)
    assert pacer.capacity == 500
    for _ in range(500):
        await pacer.acquire("outlook:a")
    assert fake.now == 1000.0  # no wait at all
    assert pacer.reserve("outlook:a") == pytest.approx(600 / 9500)
    assert pacer.reserve("outlook:b") == 0.0


async def test_concurrent_requests_of_a_mailbox_queue_in_order() -> None:
    fake = FakeTime()
    pacer = MailboxPacer(100, 60.0, burst_fraction=0.02, clock=fake.clock, sleep=fake.sleep)
    waits = [pacer.reserve("outlook:a") for _ in range(6)]
    step = 60 / 98
    assert waits == pytest.approx([0.0, 0.0, step, 2 * step, 3 * step, 4 * step])
    # after a quiet window the bucket is full again (and an idle bucket may be forgotten)
    fake.now += 600
    assert pacer.reserve("outlook:a") == 0.0


def test_limits_are_validated() -> None:
    with pytest.raises(ValueError, match="requests per window"):
        MailboxPacer(1, 60.0)
    with pytest.raises(ValueError, match="requests per window"):
        MailboxPacer(100, 60.0, burst_fraction=1.0)
