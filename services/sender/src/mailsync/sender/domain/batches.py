"""How one batch of send commands is worked through concurrently without changing what any command gets.

* **One request id, one piece of work.** A request id that occurs more than once in a batch (a redelivery, a
  producer's retry) is decided once, by its first occurrence in offset order, as sequential processing
  would; every occurrence is answered with that one result (S7).
* **Replies after their sender's earlier commands.** A reply (`reply_context`) may answer a message sent by
  an earlier command of the same sender (subaccount and user) in the same batch, and finds its thread by
  that message; so it starts only once every earlier command of that sender in the batch has been answered.
  Everything else runs concurrently: new messages do not depend on one another.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BatchItem:
    """What the plan needs to know of one record of the batch."""

    request_id: str
    sender: tuple[str, str] | None
    """(subaccount id, user id) of a valid command; None for one that is refused as invalid."""
    is_reply: bool


@dataclass(frozen=True)
class BatchPlan:
    """`work`: the position of the first record of each request id, in offset order; `waits_for`: for a
    reply's position, the earlier positions in `work` it starts after."""

    work: tuple[int, ...]
    waits_for: dict[int, tuple[int, ...]]


def plan_batch(items: list[BatchItem]) -> BatchPlan:
    """The plan of a batch whose records, in offset order, are `items`."""
    seen: set[str] = set()
    work: list[int] = []
    earlier_of_sender: dict[tuple[str, str], list[int]] = {}
    waits_for: dict[int, tuple[int, ...]] = {}
    for position, item in enumerate(items):
        if item.request_id in seen:
            continue
        seen.add(item.request_id)
        work.append(position)
        if item.sender is None:
            continue
        earlier = earlier_of_sender.setdefault(item.sender, [])
        if item.is_reply and earlier:
            waits_for[position] = tuple(earlier)
        earlier.append(position)
    return BatchPlan(tuple(work), waits_for)
