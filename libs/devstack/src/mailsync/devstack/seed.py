"""Seeding a running product through its public interfaces: mailboxes at the providers, the CRM's directory,
and connected mailboxes.

A user is created in a sandbox (the provider's side: an account exists), announced by the CRM
(`SubaccountUserUpserted`), and connected through the ingest service's OAuth flow. `add_*_user` return once
the connection is usable end to end: the provider has the watch (Gmail) or the subscriptions (Outlook),
and the sender has applied the connection change (its `/metrics` count the change as processed), so an
individual send right after goes through the mailbox (S1) rather than the subaccount provider.
`seed_demo` builds the world `make run` shows.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from mailsync.common.contracts import CONNECTIONS_CHANGED
from mailsync.devstack.connect import connect_gmail, connect_outlook
from mailsync.devstack.observe import processed
from mailsync.gmail_sandbox import GmailSandboxAdmin
from mailsync.graph_sandbox import GraphSandboxAdmin

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    import aiohttp

    from mailsync.devstack.crm import Crm
    from mailsync.devstack.product import ProductEndpoints

DEMO_SUBACCOUNT = "sub_demo"


@dataclass(frozen=True)
class Contact:
    """A CRM contact with one address."""

    contact_id: str
    address: str


@dataclass(frozen=True)
class ConnectedUser:
    """A CRM user whose mailbox is connected in one subaccount."""

    subaccount_id: str
    user_id: str
    address: str
    provider: Literal["gmail", "outlook"]
    connection_id: str
    mailbox_id: str


@dataclass(frozen=True)
class DemoWorld:
    """What `seed_demo` created."""

    subaccount_id: str
    gmail_user: ConnectedUser
    outlook_user: ConnectedUser
    gmail_contact: Contact
    outlook_contact: Contact


class Seeder:
    """Creates users, contacts and connections on a running product."""

    def __init__(self, endpoints: ProductEndpoints, crm: Crm, http: aiohttp.ClientSession) -> None:
        """Use the CRM stand-in `crm` and the HTTP session `http` (the user's browser, the CRM backend)."""
        self.endpoints = endpoints
        self.crm = crm
        self.http = http
        self.gmail = GmailSandboxAdmin(endpoints.gmail_sandbox_url, session=http)
        self.graph = GraphSandboxAdmin(endpoints.graph_sandbox_http_url)

    async def close(self) -> None:
        """Release the admin clients."""
        await self.gmail.close()
        await self.graph.close()

    async def add_contact(
        self, subaccount_id: str, contact_id: str, address: str, *, assigned_user_id: str | None
    ) -> Contact:
        """The CRM creates a contact."""
        await self.crm.upsert_contact(subaccount_id, contact_id, [address], assigned_user_id=assigned_user_id)
        return Contact(contact_id, address)

    async def add_gmail_user(
        self,
        subaccount_id: str,
        user_id: str,
        address: str,
        *,
        kind: Literal["consumer", "workspace"] = "consumer",
        display_name: str = "",
    ) -> ConnectedUser:
        """A Gmail account exists, the CRM knows the user, and the user connects it (C2)."""
        await self.gmail.create_mailbox(address, kind=kind, display_name=display_name)
        await self.crm.upsert_user(subaccount_id, user_id, [address], display_name=display_name or None)
        url = self.endpoints.ingest_gmail_url
        body = await connect_gmail(self.http, url, subaccount_id, user_id, address)
        await _eventually(lambda: self._gmail_watched(address), what=f"the Gmail watch of {address}")
        connected = _connected(subaccount_id, user_id, address, "gmail", body)
        await self.sender_caught_up(connected.connection_id)
        return connected

    async def add_outlook_user(
        self, subaccount_id: str, user_id: str, address: str, *, display_name: str = ""
    ) -> ConnectedUser:
        """An Outlook mailbox exists, the CRM knows the user, and the user connects it (C2)."""
        await self.graph.create_mailbox(address, display_name=display_name)
        await self.crm.upsert_user(subaccount_id, user_id, [address], display_name=display_name or None)
        body = await connect_outlook(
            self.http,
            self.endpoints.ingest_outlook_url,
            subaccount_id,
            user_id,
            address,
            ca_file=str(self.endpoints.graph_ca_file),
        )
        await _eventually(
            lambda: self._outlook_subscribed(address), what=f"the Graph subscriptions of {address}"
        )
        connected = _connected(subaccount_id, user_id, address, "outlook", body)
        await self.sender_caught_up(connected.connection_id)
        return connected

    async def _gmail_watched(self, address: str) -> bool:
        return (await self.gmail.mailbox(address)).get("watch") is not None

    async def _outlook_subscribed(self, address: str) -> bool:
        users = {str(m.get("address", "")).lower(): str(m.get("id")) for m in await self.graph.mailboxes()}
        user_id = users.get(address.lower(), "")
        mine = [
            s
            for s in await self.graph.subscriptions()
            if s.get("creatorId") == user_id or user_id in str(s.get("resource", ""))
        ]
        return len(mine) >= 2  # Inbox and Sent Items

    async def sender_caught_up(self, connection_id: str) -> None:
        """Wait until the CRM has seen a change of `connection_id` and the sender has processed as many
        connection changes as the CRM has seen."""
        await self.crm.wait_until(
            lambda: any(c.connection_id == connection_id for c in self.crm.connection_changes),
            what=f"a ConnectionChanged of {connection_id}",
        )
        await _eventually(
            lambda: self._connection_changes_processed("sender"), what="the sender's connection read model"
        )

    async def _connection_changes_processed(self, service: str) -> bool:
        seen = len(self.crm.connection_changes)
        if seen == 0:
            return False
        url = self.endpoints.service_urls[service]
        return await processed(self.http, url, self.endpoints.topic(CONNECTIONS_CHANGED)) >= seen


def _connected(
    subaccount_id: str,
    user_id: str,
    address: str,
    provider: Literal["gmail", "outlook"],
    body: dict[str, object],
) -> ConnectedUser:
    return ConnectedUser(
        subaccount_id, user_id, address, provider, str(body["connection_id"]), str(body["mailbox_id"])
    )


async def _eventually(check: Callable[[], Awaitable[bool]], *, what: str, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not there within {within} s")
        await asyncio.sleep(0.2)


async def seed_demo(seeder: Seeder) -> DemoWorld:
    """One subaccount, a Gmail user and an Outlook user, each with an assigned contact, both connected."""
    sub = DEMO_SUBACCOUNT
    gmail_user = await seeder.add_gmail_user(sub, "usr_ada", "ada@gmail.example", display_name="Ada Lovelace")
    outlook_user = await seeder.add_outlook_user(
        sub, "usr_grace", "grace@sandbox.onmicrosoft.com", display_name="Grace Hopper"
    )
    gmail_contact = await seeder.add_contact(
        sub, "ct_charles", "charles@babbage.example", assigned_user_id=gmail_user.user_id
    )
    outlook_contact = await seeder.add_contact(
        sub, "ct_alan", "alan@turing.example", assigned_user_id=outlook_user.user_id
    )
    return DemoWorld(sub, gmail_user, outlook_user, gmail_contact, outlook_contact)
