"""What the routing rules need to know besides the message: connections, directory, threads, policy.

The handler loads these from the router's read models for one message; `route_message` never queries.
Addresses in the facts are normalised (see `identity.normalize_address`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from mailsync.common.contracts import AttachmentMeta, Provider


@dataclass(frozen=True)
class MailboxBinding:
    """One connection's tie to the message's mailbox over time.

    The connection synced this mailbox from `bound_from` (its connection time, C7) until `bound_until`, when
    it was disconnected (C5) or moved to another mailbox (C4); `bound_until` is None while it still is.
    """

    connection_id: str
    subaccount_id: str
    user_id: str
    bound_from: datetime
    bound_until: datetime | None = None
    ended_by: Literal["disconnected", "replaced"] | None = None


@dataclass(frozen=True)
class UserFacts:
    """A user of a subaccount: the addresses that identify them, and their CRM BCC address (P6)."""

    user_id: str
    addresses: frozenset[str]
    bcc_address: str | None = None


@dataclass(frozen=True)
class ContactFacts:
    """A contact whose addresses include one of the message's addresses."""

    contact_id: str
    addresses: frozenset[str]
    assigned_user_id: str | None
    created_at: datetime


@dataclass(frozen=True)
class ThreadLink:
    """The conversation of one subaccount that already holds the message's thread."""

    contact_id: str
    conversation_id: str


@dataclass(frozen=True)
class SubaccountFacts:
    """One subaccount where the mailbox is (or was) connected."""

    subaccount_id: str
    users: tuple[UserFacts, ...] = ()
    contacts: tuple[ContactFacts, ...] = ()
    thread: ThreadLink | None = None

    def user(self, user_id: str) -> UserFacts | None:
        return next((u for u in self.users if u.user_id == user_id), None)

    def is_user_address(self, address: str) -> bool:
        return any(address in u.addresses for u in self.users)

    def contacts_with(self, address: str) -> list[ContactFacts]:
        """Contacts carrying `address`, the first-created first (P4); ties broken by id for determinism."""
        return sorted(
            (c for c in self.contacts if address in c.addresses), key=lambda c: (c.created_at, c.contact_id)
        )


@dataclass(frozen=True)
class AttachmentPolicy:
    """Which attachments a provider's messages may carry to sync (O3, S5).

    The reference policy: at most 3 MB per attachment and only the listed extensions. `max_bytes=None`
    disables the size rule; an empty `allowed_extensions` disables the type rule.
    """

    max_bytes: int | None = 3 * 1024 * 1024
    allowed_extensions: frozenset[str] = frozenset(
        {"jpg", "jpeg", "png", "mp4", "mpeg", "zip", "rar", "pdf", "doc", "docx", "txt"}
    )

    def violations(self, attachments: tuple[AttachmentMeta, ...]) -> list[str]:
        """Human-readable reasons why `attachments` break the policy; empty when they don't."""
        problems: list[str] = []
        for attachment in attachments:
            if attachment.is_inline:
                continue
            if self.max_bytes is not None and attachment.size_bytes > self.max_bytes:
                problems.append(
                    f"{attachment.filename} is {attachment.size_bytes} bytes (limit {self.max_bytes})"
                )
            extension = attachment.filename.rpartition(".")[2].lower() if "." in attachment.filename else ""
            if self.allowed_extensions and extension not in self.allowed_extensions:
                problems.append(f"{attachment.filename}: type .{extension or '(none)'} is not allowed")
        return problems


NO_POLICY = AttachmentPolicy(max_bytes=None, allowed_extensions=frozenset())


@dataclass(frozen=True)
class RoutingFacts:
    """Everything `route_message` needs about one message's mailbox."""

    bindings: tuple[MailboxBinding, ...]
    """Every connection that is or was bound to the mailbox."""
    subaccounts: Mapping[str, SubaccountFacts]
    """Facts per subaccount of those connections."""
    thread_owner: str | None = None
    """The subaccount that claimed the thread (CRM-started, M3; or replied to from the CRM, M2)."""
    attachment_policies: Mapping[Provider, AttachmentPolicy] = field(
        default_factory=lambda: {"outlook": AttachmentPolicy(), "gmail": NO_POLICY}
    )
