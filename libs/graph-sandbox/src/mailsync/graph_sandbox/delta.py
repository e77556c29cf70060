"""Delta query for the messages of one mail folder (``mailFolders/{id}/messages/delta``).

Behaviour from ``api/message-delta.md``, ``concepts/delta-query-messages.md`` and
``concepts/delta-query-overview.md``:

* A round starts without a token and returns every message of the folder; each page ends with either
  ``@odata.nextLink`` (``$skiptoken``: keep paging) or ``@odata.deltaLink`` (``$deltatoken``: the round is
  complete, store it). Later rounds started from the deltaLink return only what changed since.
* Query options (``$select``, ``$filter``, ``changeType``) go on the first request only; the service keeps
  them
  in its sync state behind the opaque token and applies them to every later page and round.
* A message deleted from the folder, or moved out of it, is reported as
  ``{"@odata.type": "#microsoft.graph.message", "id": ..., "@removed": {"reason": "deleted"}}``. A message
  moved in is reported like a new one. Several changes to one message collapse into its latest state.
* Outlook sync states have no fixed lifetime: they live in a bounded cache and are evicted. A token whose
  state is gone gets ``syncStateNotFound``; after tenant maintenance the service answers 410
  ``resyncRequired``
  with a ``Location`` header carrying an empty ``$deltatoken``. Both mean: run a full sync again. The sandbox
  answers both with 410 (the overview names 410 Gone for a sync reset).
* The function may be called as ``delta`` or ``delta()`` (the SDKs use the latter).
* Page size: ``Prefer: odata.maxpagesize=n`` (echoed in ``Preference-Applied``), else ``$top``, else 10.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections import OrderedDict
from typing import Any

from mailsync.graph_sandbox.errors import GraphError
from mailsync.graph_sandbox.mailbox import ChangeKind, Mailbox
from mailsync.graph_sandbox.odata_query import Comparison, matches_all
from mailsync.graph_sandbox.representation import message_json

DEFAULT_PAGE_SIZE = 10
MAX_PAGE_SIZE = 1000


@dataclasses.dataclass(frozen=True)
class SyncOptions:
    """The query options of a delta round, fixed on its first request."""

    select: tuple[str, ...] | None
    filters: tuple[Comparison, ...]
    change_types: frozenset[str] | None


@dataclasses.dataclass(frozen=True)
class SyncState:
    """What a token stands for.

    ``anchor_seq`` is the mailbox change sequence the round is complete up to; ``pending`` (skip tokens only)
    lists the ``(message id, change type)`` entries not yet returned in this round.
    """

    mailbox_id: str
    folder_id: str
    options: SyncOptions
    anchor_seq: int
    pending: tuple[tuple[str, str], ...] | None


@dataclasses.dataclass(frozen=True)
class DeltaPage:
    """One response page: items plus exactly one of ``skip_token`` / ``delta_token``."""

    items: list[dict[str, Any]]
    skip_token: str | None
    delta_token: str | None


def sync_state_not_found() -> GraphError:
    """The error for a token whose sync state was evicted or never existed."""
    return GraphError(
        410,
        "syncStateNotFound",
        "The sync state generation is not found. The delta token is expired and data must be synchronized "
        "again.",
    )


class SyncStateCache:
    """A bounded least-recently-used store of sync states keyed by opaque token.

    Tokens are reusable (a client may replay a deltaLink) until evicted by capacity, expired through the admin
    API, or invalidated by a forced resync of their mailbox.
    """

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._states: OrderedDict[str, SyncState] = OrderedDict()
        self._resync_required: set[str] = set()  # tokens that answer resyncRequired

    def put(self, state: SyncState) -> str:
        """Store ``state`` and return its new token."""
        token = secrets.token_urlsafe(48)
        self._states[token] = state
        while len(self._states) > self._capacity:
            evicted, _ = self._states.popitem(last=False)
            self._resync_required.discard(evicted)
        return token

    def get(self, token: str) -> SyncState:
        """The state behind ``token``; raises the 410 the real service gives when it's gone."""
        state = self._states.get(token)
        if state is None:
            raise sync_state_not_found()
        if token in self._resync_required:
            raise GraphError(
                410,
                "resyncRequired",
                "Resync required. Replace any local items with the server's, and start a new sync round.",
            )
        self._states.move_to_end(token)
        return state

    def expire(self, token: str) -> bool:
        """Forget one token (as cache eviction would). Returns whether it existed."""
        self._resync_required.discard(token)
        return self._states.pop(token, None) is not None

    def expire_mailbox(self, mailbox_id: str) -> int:
        """Forget every token of a mailbox; returns how many."""
        doomed = [t for t, s in self._states.items() if s.mailbox_id == mailbox_id]
        for token in doomed:
            del self._states[token]
            self._resync_required.discard(token)
        return len(doomed)

    def require_resync(self, mailbox_id: str) -> int:
        """Make every existing token of the mailbox answer 410 ``resyncRequired`` (tenant maintenance).

        Tokens of rounds started afterwards are unaffected. Returns how many tokens were flagged.
        """
        flagged = [t for t, s in self._states.items() if s.mailbox_id == mailbox_id]
        self._resync_required.update(flagged)
        return len(flagged)

    def clear(self) -> None:
        """Drop everything."""
        self._states.clear()
        self._resync_required.clear()


def _initial_entries(mailbox: Mailbox, folder_id: str, options: SyncOptions) -> list[tuple[str, str]]:
    return [(m.id, "created") for m in mailbox.in_folder(folder_id) if matches_all(list(options.filters), m)]


def _changed_entries(
    mailbox: Mailbox, folder_id: str, options: SyncOptions, since: int
) -> list[tuple[str, str]]:
    first_kind: dict[str, str] = {}
    order: list[str] = []
    for change in mailbox.changes_since(since):
        if folder_id not in {change.old_folder_id, change.new_folder_id}:
            continue
        if change.message_id not in first_kind:
            entered = change.kind is ChangeKind.CREATED or (
                change.kind is ChangeKind.MOVED and change.new_folder_id == folder_id
            )
            first_kind[change.message_id] = "created" if entered else "updated"
            order.append(change.message_id)
    entries: list[tuple[str, str]] = []
    for message_id in order:
        message = mailbox.messages.get(message_id)
        if message is None or message.folder_id != folder_id:
            entries.append((message_id, "deleted"))
        elif matches_all(list(options.filters), message):
            entries.append((message_id, first_kind[message_id]))
    return entries


def _render(
    mailbox: Mailbox, folder_id: str, options: SyncOptions, entry: tuple[str, str], body_type: str | None
) -> dict[str, Any] | None:
    message_id, change_type = entry
    if change_type == "deleted":
        return {
            "@odata.type": "#microsoft.graph.message",
            "id": message_id,
            "@removed": {"reason": "deleted"},
        }
    message = mailbox.messages.get(message_id)
    if message is None or message.folder_id != folder_id:
        return None  # gone since the round started: the next round reports the removal
    return {
        "@odata.type": "#microsoft.graph.message",
        **message_json(message, select=options.select, body_type=body_type),
    }


def delta_page(
    cache: SyncStateCache,
    mailbox: Mailbox,
    folder_id: str,
    *,
    page_size: int,
    options: SyncOptions | None = None,
    skip_token: str | None = None,
    delta_token: str | None = None,
    body_type: str | None = None,
) -> DeltaPage:
    """Serve one page of a delta round.

    Exactly one of ``options`` (a new round), ``skip_token`` (next page) or ``delta_token`` (a new round
    after a completed one) is given; ``body_type`` is the page's ``Prefer: outlook.body-content-type``.
    Raises the 410 errors described in the module docstring.
    """
    if skip_token is not None:
        state = cache.get(skip_token)
        entries = list(state.pending or ())
        anchor = state.anchor_seq
    elif delta_token is not None:
        state = cache.get(delta_token)
        anchor = mailbox.last_seq
        entries = _changed_entries(mailbox, state.folder_id, state.options, state.anchor_seq)
    else:
        if options is None:
            raise ValueError("a new round needs its options")
        state = SyncState(mailbox.user_id, folder_id, options, mailbox.last_seq, None)
        anchor = mailbox.last_seq
        entries = _initial_entries(mailbox, folder_id, options)
    if state.mailbox_id != mailbox.user_id or state.folder_id != folder_id:
        raise sync_state_not_found()
    if state.options.change_types is not None:
        entries = [e for e in entries if e[1] in state.options.change_types]
    items: list[dict[str, Any]] = []
    while entries and len(items) < page_size:
        rendered = _render(mailbox, folder_id, state.options, entries.pop(0), body_type)
        if rendered is not None:
            items.append(rendered)
    if entries:
        token = cache.put(dataclasses.replace(state, anchor_seq=anchor, pending=tuple(entries)))
        return DeltaPage(items, token, None)
    token = cache.put(dataclasses.replace(state, anchor_seq=anchor, pending=None))
    return DeltaPage(items, None, token)
