"""The in-memory Exchange mailbox model: users, folders, messages, attachments and a change log.

Pure domain code (no I/O). Rules taken from the Graph and Exchange documentation:

* Every mailbox has the well-known folders ``inbox``, ``sentitems``, ``drafts`` and ``deleteditems``;
  Graph accepts the well-known name anywhere a folder id is expected, case-insensitively.
* ``conversationId`` is shared by the messages of one conversation. ``reply``/``createReply``/``forward``
  inherit the parent's ``conversationId`` and extend its ``conversationIndex`` (Thread-Index). Mail from
  outside joins a conversation when it carries a known Thread-Index GUID, or when its ``In-Reply-To`` /
  ``References`` name a message in the mailbox and the normalized subject matches; otherwise it starts one
  (Exchange groups by Thread-Index/Thread-Topic, not primarily by References).
* Sent mail gets an Exchange-minted ``internetMessageId``; a reply carries ``In-Reply-To`` and ``References``
  per RFC 5322 section 3.6.4 and the subject gets a single ``RE:`` prefix.
* Every change is appended to a per-mailbox change log with a monotonically increasing sequence number;
  delta queries and change notifications are both derived from it.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import enum
import re
from collections.abc import Callable, Iterable
from email.utils import format_datetime

from mailsync.graph_sandbox import identifiers

WELL_KNOWN_FOLDERS: dict[str, str] = {
    "inbox": "Inbox",
    "sentitems": "Sent Items",
    "drafts": "Drafts",
    "deleteditems": "Deleted Items",
}

_SUBJECT_PREFIX = re.compile(r"^\s*((re|fw|fwd|aw|wg)\s*:\s*)+", re.IGNORECASE)


def reply_subject(subject: str) -> str:
    """The subject of a reply: one ``RE:`` in front of the subject stripped of its prefixes."""
    return f"RE: {_SUBJECT_PREFIX.sub('', subject).strip()}"


def normalize_subject(subject: str) -> str:
    """The conversation topic: the subject without any ``RE:``/``FW:`` prefixes, case-folded."""
    return _SUBJECT_PREFIX.sub("", subject).strip().casefold()


class ChangeKind(enum.Enum):
    """What happened to a message, as recorded in the change log."""

    CREATED = "created"
    UPDATED = "updated"
    MOVED = "moved"
    DELETED = "deleted"


@dataclasses.dataclass(frozen=True)
class EmailAddress:
    """A recipient: ``{"emailAddress": {"name", "address"}}`` in Graph JSON."""

    address: str
    name: str = ""


@dataclasses.dataclass
class Attachment:
    """A file attachment (``#microsoft.graph.fileAttachment``)."""

    id: str
    name: str
    content_type: str
    content: bytes
    last_modified: dt.datetime
    is_inline: bool = False
    content_id: str | None = None

    @property
    def size(self) -> int:
        """Size in bytes, as Graph reports it (the decoded content)."""
        return len(self.content)


@dataclasses.dataclass
class Message:
    """One Exchange item in a mail folder."""

    id: str
    folder_id: str
    subject: str
    body_content_type: str
    body: str
    sender: EmailAddress | None
    to: list[EmailAddress]
    cc: list[EmailAddress]
    bcc: list[EmailAddress]
    reply_to: list[EmailAddress]
    internet_message_id: str
    conversation_id: str
    conversation_index: bytes
    headers: list[tuple[str, str]]
    created: dt.datetime
    last_modified: dt.datetime
    received: dt.datetime
    sent: dt.datetime | None
    change_key: str
    is_read: bool = False
    is_draft: bool = False
    importance: str = "normal"
    categories: list[str] = dataclasses.field(default_factory=list)
    attachments: list[Attachment] = dataclasses.field(default_factory=list)
    ordinal: int = 0

    def header(self, name: str) -> str | None:
        """The first value of the internet message header ``name`` (case-insensitive), if any."""
        wanted = name.casefold()
        return next((value for key, value in self.headers if key.casefold() == wanted), None)


@dataclasses.dataclass(frozen=True)
class Folder:
    """A mail folder; well-known folders carry their well-known name."""

    id: str
    display_name: str
    well_known_name: str | None


@dataclasses.dataclass(frozen=True)
class Change:
    """One entry of a mailbox's change log.

    ``old_folder_id`` is where the message was before the change (None when it was created),
    ``new_folder_id`` where it is after (None when it was deleted); ``change_key`` is the item version after
    the change (the last version for a deletion).
    """

    seq: int
    message_id: str
    kind: ChangeKind
    old_folder_id: str | None
    new_folder_id: str | None
    change_key: str


@dataclasses.dataclass(frozen=True)
class Draft:
    """What a client or the admin API supplies to create a message."""

    subject: str = ""
    body: str = ""
    body_content_type: str = "text"
    to: tuple[EmailAddress, ...] = ()
    cc: tuple[EmailAddress, ...] = ()
    bcc: tuple[EmailAddress, ...] = ()
    reply_to: tuple[EmailAddress, ...] = ()
    custom_headers: tuple[tuple[str, str], ...] = ()
    attachments: tuple[tuple[str, str, bytes], ...] = ()
    importance: str = "normal"


@dataclasses.dataclass(frozen=True)
class OutboundMessage:
    """A message as it leaves the mailbox: what the recipients' servers see."""

    sender: EmailAddress
    to: tuple[EmailAddress, ...]
    cc: tuple[EmailAddress, ...]
    bcc: tuple[EmailAddress, ...]
    subject: str
    body: str
    body_content_type: str
    internet_message_id: str
    headers: tuple[tuple[str, str], ...]
    attachments: tuple[tuple[str, str, bytes], ...]
    conversation_index: bytes
    sent: dt.datetime

    @property
    def recipients(self) -> tuple[EmailAddress, ...]:
        """Every envelope recipient (To, Cc and Bcc)."""
        return self.to + self.cc + self.bcc


ChangeListener = Callable[["Mailbox", Change], None]


class Mailbox:
    """One user's mailbox. Mutations record a :class:`Change` and notify the listener."""

    def __init__(
        self,
        *,
        user_id: str,
        address: str,
        display_name: str,
        message_id_host: str,
        clock: Callable[[], dt.datetime],
        listener: ChangeListener | None = None,
    ) -> None:
        self.user_id = user_id
        self.address = address
        self.display_name = display_name
        self._message_id_host = message_id_host
        self._clock = clock
        self._listener = listener
        self.folders: dict[str, Folder] = {}
        self.messages: dict[str, Message] = {}
        self.changes: list[Change] = []
        self._seq = 0
        self._ordinal = 0
        for well_known, display in WELL_KNOWN_FOLDERS.items():
            folder = Folder(identifiers.new_folder_id(), display, well_known)
            self.folders[folder.id] = folder

    # --- lookups -------------------------------------------------------------------------------------

    @property
    def identity(self) -> EmailAddress:
        """The mailbox owner as a recipient."""
        return EmailAddress(self.address, self.display_name)

    @property
    def last_seq(self) -> int:
        """The sequence number of the latest change (0 for a mailbox that never changed)."""
        return self._seq

    def folder(self, id_or_name: str) -> Folder | None:
        """A folder by id or by well-known name (case-insensitive), or None."""
        if id_or_name in self.folders:
            return self.folders[id_or_name]
        wanted = id_or_name.casefold()
        return next((f for f in self.folders.values() if f.well_known_name == wanted), None)

    def well_known(self, name: str) -> Folder:
        """A well-known folder; it always exists."""
        folder = self.folder(name)
        if folder is None:
            raise KeyError(name)
        return folder

    def in_folder(self, folder_id: str) -> list[Message]:
        """The folder's messages, newest received first (Graph's default order)."""
        return sorted(
            (m for m in self.messages.values() if m.folder_id == folder_id),
            key=lambda m: (m.received, m.ordinal),
            reverse=True,
        )

    def all_messages(self) -> list[Message]:
        """Every message, newest received first."""
        return sorted(self.messages.values(), key=lambda m: (m.received, m.ordinal), reverse=True)

    def by_internet_message_id(self, internet_message_id: str) -> list[Message]:
        """Messages whose Message-ID equals ``internet_message_id``."""
        return [m for m in self.messages.values() if m.internet_message_id == internet_message_id]

    def conversation(self, conversation_id: str) -> list[Message]:
        """The messages of one conversation, oldest first."""
        return sorted(
            (m for m in self.messages.values() if m.conversation_id == conversation_id),
            key=lambda m: (m.received, m.ordinal),
        )

    def changes_since(self, seq: int) -> list[Change]:
        """Changes recorded after sequence number ``seq``, oldest first."""
        return [c for c in self.changes if c.seq > seq]

    # --- mutations -----------------------------------------------------------------------------------

    def _record(self, message: Message, kind: ChangeKind, old: str | None, new: str | None) -> None:
        self._seq += 1
        change = Change(self._seq, message.id, kind, old, new, message.change_key)
        self.changes.append(change)
        if self._listener is not None:
            self._listener(self, change)

    def _store(self, message: Message) -> None:
        self._ordinal += 1
        message.ordinal = self._ordinal
        self.messages[message.id] = message
        self._record(message, ChangeKind.CREATED, None, message.folder_id)

    def _touch(self, message: Message) -> None:
        message.last_modified = self._clock()
        message.change_key = identifiers.new_change_key()

    def create_draft(self, draft: Draft, *, conversation: Message | None = None) -> Message:
        """Save ``draft`` to Drafts. With ``conversation``, the draft joins that message's conversation."""
        now = self._clock()
        conversation_id = (
            conversation.conversation_id if conversation is not None else identifiers.new_conversation_id()
        )
        index = (
            identifiers.child_conversation_index(conversation.conversation_index, now)
            if conversation is not None
            else identifiers.new_conversation_index(now)
        )
        message = Message(
            id=identifiers.new_message_id(),
            folder_id=self.well_known("drafts").id,
            subject=draft.subject,
            body_content_type=draft.body_content_type,
            body=draft.body,
            sender=None,
            to=list(draft.to),
            cc=list(draft.cc),
            bcc=list(draft.bcc),
            reply_to=list(draft.reply_to),
            internet_message_id=identifiers.new_internet_message_id(self._message_id_host),
            conversation_id=conversation_id,
            conversation_index=index,
            headers=list(draft.custom_headers),
            created=now,
            last_modified=now,
            received=now,
            sent=None,
            change_key=identifiers.new_change_key(),
            is_read=True,
            is_draft=True,
            importance=draft.importance,
            attachments=[
                Attachment(identifiers.new_attachment_id(), name, ctype, content, now)
                for name, ctype, content in draft.attachments
            ],
        )
        self._store(message)
        return message

    def create_reply(self, parent: Message, *, reply_all: bool, comment: str = "") -> Message:
        """A reply draft to ``parent``: same conversation, ``RE:`` subject, threading headers set.

        Recipients follow RFC 5322: ``replyTo`` when the parent has one, else its sender; reply-all adds the
        parent's other To and Cc recipients except the mailbox owner.
        """
        author = parent.reply_to or ([parent.sender] if parent.sender else [])
        to = list(author)
        cc: list[EmailAddress] = []
        if reply_all:
            mine = self.address.casefold()
            seen = {r.address.casefold() for r in to} | {mine}
            for recipient in parent.to:
                if recipient.address.casefold() not in seen:
                    to.append(recipient)
                    seen.add(recipient.address.casefold())
            for recipient in parent.cc:
                if recipient.address.casefold() not in seen:
                    cc.append(recipient)
                    seen.add(recipient.address.casefold())
        draft = Draft(
            subject=reply_subject(parent.subject),
            body=comment,
            body_content_type=parent.body_content_type,
            to=tuple(to),
            cc=tuple(cc),
        )
        message = self.create_draft(draft, conversation=parent)
        message.headers.extend(threading_headers(parent))
        return message

    def create_forward(self, parent: Message, *, to: Iterable[EmailAddress], comment: str = "") -> Message:
        """A forward draft of ``parent`` with its attachments, in the same conversation."""
        draft = Draft(
            subject=f"FW: {_SUBJECT_PREFIX.sub('', parent.subject).strip()}",
            body=f"{comment}\n\n-----Original Message-----\n{parent.body}" if comment else parent.body,
            body_content_type=parent.body_content_type,
            to=tuple(to),
            attachments=tuple((a.name, a.content_type, a.content) for a in parent.attachments),
        )
        message = self.create_draft(draft, conversation=parent)
        message.headers.extend(threading_headers(parent))
        return message

    def update(self, message: Message, apply: Callable[[Message], None]) -> Message:
        """Apply ``apply`` to ``message`` and record an update (new changeKey and lastModifiedDateTime)."""
        apply(message)
        self._touch(message)
        self._record(message, ChangeKind.UPDATED, message.folder_id, message.folder_id)
        return message

    def add_attachment(self, message: Message, name: str, content_type: str, content: bytes) -> Attachment:
        """Attach a file to ``message``; records an update of the message."""
        attachment = Attachment(identifiers.new_attachment_id(), name, content_type, content, self._clock())
        self.update(message, lambda m: m.attachments.append(attachment))
        return attachment

    def move(self, message: Message, folder: Folder) -> Message:
        """Move ``message`` to ``folder``. Exchange keeps the item id in this sandbox (see docs)."""
        old = message.folder_id
        message.folder_id = folder.id
        self._touch(message)
        self._record(message, ChangeKind.MOVED, old, folder.id)
        return message

    def delete(self, message: Message) -> None:
        """Hard-delete ``message``."""
        del self.messages[message.id]
        self._record(message, ChangeKind.DELETED, message.folder_id, None)

    def send(self, draft_message: Message, *, save_to_sent_items: bool = True) -> OutboundMessage:
        """Send a draft: stamp sender and times, then file it in Sent Items (or drop it when not saved).

        Returns what the recipients receive. Sending a message with no recipients is the caller's check.
        """
        now = self._clock()
        draft_message.sender = self.identity
        draft_message.sent = now
        draft_message.received = now
        draft_message.is_draft = False
        draft_message.headers = _with_standard_headers(draft_message, self.identity, now)
        outbound = OutboundMessage(
            sender=self.identity,
            to=tuple(draft_message.to),
            cc=tuple(draft_message.cc),
            bcc=tuple(draft_message.bcc),
            subject=draft_message.subject,
            body=draft_message.body,
            body_content_type=draft_message.body_content_type,
            internet_message_id=draft_message.internet_message_id,
            headers=tuple(draft_message.headers),
            attachments=tuple((a.name, a.content_type, a.content) for a in draft_message.attachments),
            conversation_index=draft_message.conversation_index,
            sent=now,
        )
        if save_to_sent_items:
            self.move(draft_message, self.well_known("sentitems"))
        else:
            self.delete(draft_message)
        return outbound

    def deliver(self, outbound: OutboundMessage) -> Message:
        """File a message received from ``outbound.sender`` in the Inbox, joining a known conversation."""
        now = self._clock()
        parent = self._conversation_parent(outbound)
        message = Message(
            id=identifiers.new_message_id(),
            folder_id=self.well_known("inbox").id,
            subject=outbound.subject,
            body_content_type=outbound.body_content_type,
            body=outbound.body,
            sender=outbound.sender,
            to=list(outbound.to),
            cc=list(outbound.cc),
            bcc=[r for r in outbound.bcc if r.address.casefold() == self.address.casefold()],
            reply_to=[],
            internet_message_id=outbound.internet_message_id,
            conversation_id=parent.conversation_id if parent else identifiers.new_conversation_id(),
            conversation_index=self._inbound_index(outbound, parent, now),
            headers=[*_received_headers(self.address, now), *outbound.headers],
            created=now,
            last_modified=now,
            received=now,
            sent=outbound.sent,
            change_key=identifiers.new_change_key(),
            attachments=[
                Attachment(identifiers.new_attachment_id(), name, ctype, content, now)
                for name, ctype, content in outbound.attachments
            ],
        )
        self._store(message)
        return message

    @staticmethod
    def _inbound_index(outbound: OutboundMessage, parent: Message | None, now: dt.datetime) -> bytes:
        if identifiers.conversation_index_guid(outbound.conversation_index) is not None:
            return outbound.conversation_index
        if parent is not None:
            return identifiers.child_conversation_index(parent.conversation_index, now)
        return identifiers.new_conversation_index(now)

    def _conversation_parent(self, outbound: OutboundMessage) -> Message | None:
        return self.conversation_parent(outbound.subject, outbound.headers, outbound.conversation_index)

    def conversation_parent(
        self, subject: str, headers: Iterable[tuple[str, str]], conversation_index: bytes = b""
    ) -> Message | None:
        """The message whose conversation a message with these headers joins (see the module docstring)."""
        guid = identifiers.conversation_index_guid(conversation_index)
        if guid is not None:
            for message in self.messages.values():
                if identifiers.conversation_index_guid(message.conversation_index) == guid:
                    return message
        referenced = _message_ids(dict(headers), ("In-Reply-To", "References"))
        topic = normalize_subject(subject)
        for message_id in reversed(referenced):
            for message in self.by_internet_message_id(message_id):
                if normalize_subject(message.subject) == topic:
                    return message
        return None


def threading_headers(parent: Message) -> list[tuple[str, str]]:
    """``In-Reply-To`` and ``References`` for a reply to ``parent`` (RFC 5322 section 3.6.4)."""
    references = parent.header("References")
    if references is None:
        in_reply_to = parent.header("In-Reply-To")
        references = in_reply_to if in_reply_to and len(_split_ids(in_reply_to)) == 1 else None
    chain = f"{references} {parent.internet_message_id}" if references else parent.internet_message_id
    return [("In-Reply-To", parent.internet_message_id), ("References", chain)]


def _split_ids(value: str) -> list[str]:
    return re.findall(r"<[^<>\s]+>", value)


def _message_ids(headers: dict[str, str], names: Iterable[str]) -> list[str]:
    lowered = {k.casefold(): v for k, v in headers.items()}
    found: list[str] = []
    for name in names:
        found.extend(_split_ids(lowered.get(name.casefold(), "")))
    return found


def _format_address(address: EmailAddress) -> str:
    return f'"{address.name}" <{address.address}>' if address.name else f"<{address.address}>"


def _with_standard_headers(message: Message, sender: EmailAddress, now: dt.datetime) -> list[tuple[str, str]]:
    standard: list[tuple[str, str]] = [
        ("From", _format_address(sender)),
        ("To", ", ".join(_format_address(r) for r in message.to)),
    ]
    if message.cc:
        standard.append(("CC", ", ".join(_format_address(r) for r in message.cc)))
    standard += [
        ("Subject", message.subject),
        ("Thread-Topic", _SUBJECT_PREFIX.sub("", message.subject).strip()),
        ("Thread-Index", base64.b64encode(message.conversation_index).decode("ascii")),
        ("Date", format_datetime(now)),
        ("Message-ID", message.internet_message_id),
    ]
    kept = [(k, v) for k, v in message.headers if k.casefold() not in {h.casefold() for h, _ in standard}]
    mime_type = "text/html" if message.body_content_type == "html" else "text/plain"
    return [*standard, *kept, ("Content-Type", f'{mime_type}; charset="utf-8"'), ("MIME-Version", "1.0")]


def _received_headers(address: str, now: dt.datetime) -> list[tuple[str, str]]:
    return [("Received", f"from sandbox.mail.protection.outlook.com for <{address}>; {format_datetime(now)}")]
