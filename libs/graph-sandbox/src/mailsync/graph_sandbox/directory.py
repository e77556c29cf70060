"""The tenant's users and their mailboxes, and mail transport between them.

Users are found by object id or by userPrincipalName (case-insensitive), as ``/users/{id |
userPrincipalName}``
allows. Mail sent to an address that belongs to a sandbox mailbox is delivered to that mailbox's Inbox; mail
to
any other address is kept in the outbound log, which the admin API exposes as "what the outside world got".
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable

from mailsync.graph_sandbox import identifiers
from mailsync.graph_sandbox.mailbox import Change, Mailbox, Message, OutboundMessage


@dataclasses.dataclass(frozen=True)
class ExternalDelivery:
    """A message that left the tenant, with the outside recipients it was addressed to."""

    message: OutboundMessage
    recipients: tuple[str, ...]


class Directory:
    """All mailboxes of the sandbox tenant, with one change listener shared by every mailbox."""

    def __init__(
        self,
        *,
        tenant_id: str,
        message_id_host: str,
        clock: Callable[[], dt.datetime],
        listener: Callable[[Mailbox, Change], None] | None = None,
    ) -> None:
        self.tenant_id = tenant_id
        self._message_id_host = message_id_host
        self._clock = clock
        self._listener = listener
        self._mailboxes: dict[str, Mailbox] = {}
        self.external: list[ExternalDelivery] = []

    def set_listener(self, listener: Callable[[Mailbox, Change], None]) -> None:
        """Route every mailbox change to ``listener`` (the subscription engine)."""
        self._listener = listener

    def _on_change(self, mailbox: Mailbox, change: Change) -> None:
        if self._listener is not None:
            self._listener(mailbox, change)

    def create(self, address: str, display_name: str = "", user_id: str | None = None) -> Mailbox:
        """Create a user with a mailbox. Raises ``ValueError`` when the address is taken."""
        if self.find(address) is not None:
            raise ValueError(f"a mailbox for {address} already exists")
        mailbox = Mailbox(
            user_id=user_id or identifiers.new_guid(),
            address=address,
            display_name=display_name or address.split("@", 1)[0],
            message_id_host=self._message_id_host,
            clock=self._clock,
            listener=self._on_change,
        )
        self._mailboxes[mailbox.user_id] = mailbox
        return mailbox

    def find(self, id_or_upn: str) -> Mailbox | None:
        """A mailbox by user id or userPrincipalName, or None."""
        if id_or_upn in self._mailboxes:
            return self._mailboxes[id_or_upn]
        wanted = id_or_upn.casefold()
        return next((m for m in self._mailboxes.values() if m.address.casefold() == wanted), None)

    def all(self) -> list[Mailbox]:
        """Every mailbox, in creation order."""
        return list(self._mailboxes.values())

    def transport(self, outbound: OutboundMessage) -> list[Message]:
        """Deliver ``outbound`` to every recipient: sandbox mailboxes get it in their Inbox.

        Returns the messages filed in sandbox mailboxes; other recipients are recorded in :attr:`external`.
        A mailbox addressed twice (To and Cc) receives one copy.
        """
        delivered: list[Message] = []
        outside: list[str] = []
        seen: set[str] = set()
        for recipient in outbound.recipients:
            key = recipient.address.casefold()
            if key in seen:
                continue
            seen.add(key)
            mailbox = self.find(recipient.address)
            if mailbox is None:
                outside.append(recipient.address)
            else:
                delivered.append(mailbox.deliver(outbound))
        if outside:
            self.external.append(ExternalDelivery(outbound, tuple(outside)))
        return delivered
