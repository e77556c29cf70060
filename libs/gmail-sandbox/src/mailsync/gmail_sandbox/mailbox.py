"""The in-memory mailbox model: users, messages with their RFC 822 bytes, labels, threads and history.

Gmail facts the model keeps:

* ``historyId`` is per mailbox and only grows; ids are **not contiguous** (the sandbox steps by a seeded
  random amount so clients cannot assume ``+1``).
* Every change (message added or deleted, labels added or removed) is one history record; the message's own
  ``historyId`` is the last record that touched it.
* History is retained for a limited time (typically at least a week, sometimes only hours); a
  ``startHistoryId`` older than what is retained is answered with 404 and the client must do a full sync.
* A thread's id is the id of its first message; message ids are 16 hex digits that grow with time.
* System labels (INBOX, SENT, UNREAD, ...) always exist; ``SENT`` is set on sends, ``INBOX``+``UNREAD`` on
  received mail.

Nothing here does I/O; listeners registered with :meth:`Mailbox.subscribe` learn about each change.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from email.message import EmailMessage
from enum import StrEnum
from functools import cached_property

from mailsync.gmail_sandbox import mime
from mailsync.gmail_sandbox.threading_rules import (
    ThreadCandidate,
    normalize_subject,
    referenced_ids,
    thread_for_received,
    thread_for_send,
)

SYSTEM_LABELS = (
    "INBOX",
    "SENT",
    "DRAFT",
    "SPAM",
    "TRASH",
    "UNREAD",
    "STARRED",
    "IMPORTANT",
    "CHAT",
    "CATEGORY_PERSONAL",
    "CATEGORY_SOCIAL",
    "CATEGORY_PROMOTIONS",
    "CATEGORY_UPDATES",
    "CATEGORY_FORUMS",
)

WEEK_SECONDS = 7 * 24 * 3600


class AccountKind(StrEnum):
    """Consumer gmail.com accounts and Google Workspace accounts differ in their daily sending limit."""

    CONSUMER = "consumer"
    WORKSPACE = "workspace"


DAILY_SEND_LIMITS = {AccountKind.CONSUMER: 500, AccountKind.WORKSPACE: 2000}


class HistoryType(StrEnum):
    """The ``historyTypes`` values of ``history.list``."""

    MESSAGE_ADDED = "messageAdded"
    MESSAGE_DELETED = "messageDeleted"
    LABEL_ADDED = "labelAdded"
    LABEL_REMOVED = "labelRemoved"


@dataclass(frozen=True)
class Label:
    """A label; system labels have ``type`` ``system``."""

    id: str
    name: str
    type: str = "system"


@dataclass(frozen=True)
class MessageRef:
    """A message as a history record shows it: id, thread and labels at the time of the change."""

    id: str
    thread_id: str
    label_ids: tuple[str, ...]


@dataclass(frozen=True)
class HistoryRecord:
    """One mailbox change. ``labels`` are the labels added or removed for label changes."""

    id: int
    recorded_at: float
    type: HistoryType
    message: MessageRef
    labels: tuple[str, ...] = ()


@dataclass
class StoredMessage:
    """A message in one mailbox: its RFC 822 bytes plus Gmail's metadata."""

    id: str
    thread_id: str
    raw: bytes
    label_ids: set[str]
    internal_date_ms: int
    history_id: int

    @cached_property
    def parsed(self) -> EmailMessage:
        """The parsed message (cached)."""
        return mime.parse(self.raw)

    @cached_property
    def rfc_message_id(self) -> str:
        """The ``Message-ID`` header (``<...>``), or ``""``."""
        ids = mime.message_ids(mime.header_text(self.parsed, "Message-ID"))
        return ids[0] if ids else ""

    @cached_property
    def subject(self) -> str:
        """The decoded ``Subject``."""
        return mime.header_text(self.parsed, "Subject")

    def ref(self) -> MessageRef:
        """Return the message as history records show it."""
        return MessageRef(self.id, self.thread_id, tuple(sorted(self.label_ids)))

    def candidate(self) -> ThreadCandidate:
        """Return what the threading rule needs from this message."""
        return ThreadCandidate(self.thread_id, self.rfc_message_id, self.subject)


@dataclass
class WatchState:
    """An active ``users.watch``: where to publish and which labels filter the changes."""

    topic_name: str
    label_ids: frozenset[str]
    behavior: str
    expiration_ms: int

    def matches(self, record: HistoryRecord) -> bool:
        """Whether a change passes the watch's label filter (no labels: every change)."""
        if not self.label_ids:
            return True
        touched = set(record.message.label_ids) | set(record.labels)
        hit = bool(touched & self.label_ids)
        return hit if self.behavior == "include" else not hit


class StaleHistoryError(LookupError):
    """``startHistoryId`` is older than the retained history."""


class UnknownMessageError(LookupError):
    """No message with that id in this mailbox."""


ChangeListener = Callable[["Mailbox", HistoryRecord], None]


@dataclass
class Mailbox:
    """One user's mailbox. Not thread-safe; the sandbox runs on one event loop."""

    address: str
    kind: AccountKind
    display_name: str
    history_retention_seconds: float
    daily_send_limit: int
    rng: random.Random
    id_source: Callable[[], str]
    created_at: float
    history_id: int = 0
    history_floor: int = 0
    messages: dict[str, StoredMessage] = field(default_factory=dict)
    threads: dict[str, list[str]] = field(default_factory=dict)
    labels: dict[str, Label] = field(default_factory=dict)
    history: deque[HistoryRecord] = field(default_factory=deque)
    watch: WatchState | None = None
    sent_at: deque[float] = field(default_factory=deque)
    password_generation: int = 0
    _listeners: list[ChangeListener] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.labels:
            self.labels = {name: Label(name, name) for name in SYSTEM_LABELS}
        if not self.history_id:
            self.history_id = self.rng.randint(1_000, 9_000)
            self.history_floor = self.history_id

    def subscribe(self, listener: ChangeListener) -> None:
        """Call ``listener(mailbox, record)`` after every change."""
        self._listeners.append(listener)

    def _record(
        self, now: float, kind: HistoryType, message: StoredMessage, labels: Iterable[str] = ()
    ) -> HistoryRecord:
        self.history_id += self.rng.randint(1, 7)
        message.history_id = self.history_id
        record = HistoryRecord(self.history_id, now, kind, message.ref(), tuple(sorted(labels)))
        self.history.append(record)
        for listener in list(self._listeners):
            listener(self, record)
        return record

    # -- reading -------------------------------------------------------------------------------------------

    def get(self, message_id: str) -> StoredMessage:
        """Return a message or raise :class:`UnknownMessageError`."""
        try:
            return self.messages[message_id]
        except KeyError:
            raise UnknownMessageError(message_id) from None

    def by_rfc_message_id(self) -> dict[str, ThreadCandidate]:
        """Index this mailbox's messages by their RFC ``Message-ID``."""
        return {m.rfc_message_id: m.candidate() for m in self.messages.values() if m.rfc_message_id}

    def thread_candidates(self) -> dict[str, list[ThreadCandidate]]:
        """Group the threading facts of every message by thread id."""
        result: dict[str, list[ThreadCandidate]] = {}
        for thread_id, ids in self.threads.items():
            result[thread_id] = [self.messages[i].candidate() for i in ids]
        return result

    def thread_subject(self, thread_id: str) -> str:
        """Return the normalised subject of a thread's first message (``""`` for an unknown thread)."""
        ids = self.threads.get(thread_id)
        return normalize_subject(self.messages[ids[0]].subject) if ids else ""

    def history_after(self, start_history_id: int, now: float) -> list[HistoryRecord]:
        """Return the records with ``id > start_history_id`` in increasing order.

        Raises:
            StaleHistoryError: ``start_history_id`` is older than the retained history.
        """
        self.prune_history(now)
        if start_history_id < self.history_floor:
            raise StaleHistoryError(start_history_id)
        return [r for r in self.history if r.id > start_history_id]

    def prune_history(self, now: float) -> None:
        """Drop records older than the retention period; their ids become invalid start points."""
        horizon = now - self.history_retention_seconds
        while self.history and self.history[0].recorded_at < horizon:
            dropped = self.history.popleft()
            self.history_floor = max(self.history_floor, dropped.id)

    def expire_history(self) -> None:
        """Forget all retained history at once (the rare "valid for only a few hours" case)."""
        self.history.clear()
        self.history_floor = self.history_id

    # -- changing ------------------------------------------------------------------------------------------

    def add_message(
        self,
        raw: bytes,
        label_ids: Iterable[str],
        now: float,
        *,
        requested_thread_id: str | None = None,
        received: bool = False,
        internal_date_ms: int | None = None,
    ) -> StoredMessage:
        """Store ``raw`` with ``label_ids`` and record ``messageAdded``.

        Threading: with ``requested_thread_id`` the documented send rule applies; ``received`` messages
        without one are threaded by their headers and subject; anything else starts a new thread.
        """
        message_id = self.id_source()
        parsed = mime.parse(raw)
        referenced = referenced_ids(
            mime.message_ids(mime.header_text(parsed, "In-Reply-To")),
            mime.message_ids(mime.header_text(parsed, "References")),
        )
        subject = mime.header_text(parsed, "Subject")
        thread_id: str | None
        if requested_thread_id:
            thread_id = thread_for_send(requested_thread_id, subject, referenced, self.thread_candidates())
        elif received:
            thread_id = thread_for_received(subject, referenced, self.by_rfc_message_id())
        else:
            thread_id = None
        thread_id = thread_id or message_id
        message = StoredMessage(
            id=message_id,
            thread_id=thread_id,
            raw=raw,
            label_ids=set(label_ids),
            internal_date_ms=internal_date_ms if internal_date_ms is not None else int(now * 1000),
            history_id=self.history_id,
        )
        message.__dict__["parsed"] = parsed  # prime the cached_property: the bytes were just parsed
        self.messages[message_id] = message
        self.threads.setdefault(thread_id, []).append(message_id)
        self._record(now, HistoryType.MESSAGE_ADDED, message)
        return message

    def modify_labels(
        self, message_id: str, add: Iterable[str], remove: Iterable[str], now: float
    ) -> StoredMessage:
        """Add and remove labels, recording ``labelAdded`` / ``labelRemoved`` for the actual changes."""
        message = self.get(message_id)
        added = set(add) - message.label_ids
        removed = (set(remove) & message.label_ids) - added
        message.label_ids |= added
        message.label_ids -= removed
        if added:
            self._record(now, HistoryType.LABEL_ADDED, message, added)
        if removed:
            self._record(now, HistoryType.LABEL_REMOVED, message, removed)
        return message

    def delete_message(self, message_id: str, now: float) -> None:
        """Delete a message permanently and record ``messageDeleted``."""
        message = self.get(message_id)
        del self.messages[message_id]
        members = self.threads.get(message.thread_id, [])
        if message_id in members:
            members.remove(message_id)
        if not members:
            self.threads.pop(message.thread_id, None)
        self._record(now, HistoryType.MESSAGE_DELETED, message)

    def add_label(self, name: str) -> Label:
        """Create a user label (``Label_<n>`` id) or return the existing one with that name."""
        for label in self.labels.values():
            if label.name == name:
                return label
        label = Label(f"Label_{len(self.labels) - len(SYSTEM_LABELS) + 1}", name, "user")
        self.labels[label.id] = label
        return label


class MailStore:
    """All mailboxes of one sandbox, by lower-cased address, with seeded id generation."""

    def __init__(self, seed: int, now: Callable[[], float]) -> None:
        self._seed = seed
        self._now = now
        self.rng = random.Random(seed)  # noqa: S311 - seeded for repeatable runs, not security
        self.mailboxes: dict[str, Mailbox] = {}
        self._sequence = 0
        self._listeners: list[ChangeListener] = []

    def _next_id(self) -> str:
        self._sequence += 1
        millis = int(self._now() * 1000)
        return f"{(millis << 20) | (self._sequence & 0xFFFFF):016x}"

    def subscribe(self, listener: ChangeListener) -> None:
        """Call ``listener`` for changes in every mailbox, present and future."""
        self._listeners.append(listener)
        for mailbox in self.mailboxes.values():
            mailbox.subscribe(listener)

    def create(
        self,
        address: str,
        *,
        kind: AccountKind = AccountKind.CONSUMER,
        display_name: str = "",
        history_retention_seconds: float = WEEK_SECONDS,
        daily_send_limit: int | None = None,
    ) -> Mailbox:
        """Create a mailbox; creating an existing address replaces it with an empty one."""
        mailbox = Mailbox(
            address=address.lower(),
            kind=kind,
            display_name=display_name,
            history_retention_seconds=history_retention_seconds,
            daily_send_limit=daily_send_limit if daily_send_limit is not None else DAILY_SEND_LIMITS[kind],
            rng=random.Random(self.rng.getrandbits(32)),  # noqa: S311 - seeded for repeatable runs, not security
            id_source=self._next_id,
            created_at=self._now(),
        )
        for listener in self._listeners:
            mailbox.subscribe(listener)
        self.mailboxes[mailbox.address] = mailbox
        return mailbox

    def find(self, address: str) -> Mailbox | None:
        """Return the mailbox for ``address`` (case-insensitive) or ``None``."""
        return self.mailboxes.get(address.lower())

    def reset(self) -> None:
        """Remove every mailbox and restart the seeded randomness."""
        self.mailboxes.clear()
        self.rng = random.Random(self._seed)  # noqa: S311 - seeded for repeatable runs, not security
        self._sequence = 0
