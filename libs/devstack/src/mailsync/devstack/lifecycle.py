"""A connection's lifecycle driven from the outside (C1-C7), for the e2e suite: the CRM backend's calls to
the ingest services' HTTP APIs (status, update email, disconnect) and the user's browser going through the
providers' OAuth pages again (re-authentication, a new mailbox, a grant missing a scope).

`Seeder.add_*_user` creates the provider mailbox and connects it in one step; a scenario that needs mail in
the mailbox before the connection (C7), or the same mailbox in a second subaccount (C1), connects an
existing mailbox with `connect_gmail_mailbox` instead. Every call answers what the service answered, so a
scenario asserts on the status code and body the CRM would see. `metric_total` reads a service's counters,
for the paths a scenario must prove it took (a catch-up that recovered by date, say).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import TYPE_CHECKING, Any, Literal

from mailsync.devstack.connect import (
    authorization_url,
    connect_gmail,
    consent_gmail,
    sign_in_outlook,
)
from mailsync.devstack.crm import Crm, CrmTimeoutError
from mailsync.devstack.seed import ConnectedUser

if TYPE_CHECKING:
    import aiohttp

    from mailsync.common.contracts import ConnectionChanged
    from mailsync.devstack.product import ProductEndpoints
    from mailsync.devstack.seed import Seeder

Change = Literal["connected", "mailbox_replaced", "reauth_required", "reauthenticated", "disconnected"]


def service_url(endpoints: ProductEndpoints, provider: Literal["gmail", "outlook"]) -> str:
    """The ingest service that owns connections of `provider`."""
    return endpoints.ingest_gmail_url if provider == "gmail" else endpoints.ingest_outlook_url


async def connection_status(
    http: aiohttp.ClientSession, endpoints: ProductEndpoints, user: ConnectedUser
) -> dict[str, Any]:
    """`GET /v1/connections/{id}` (C3): the connection as the CRM shows it."""
    url = f"{service_url(endpoints, user.provider)}/v1/connections/{user.connection_id}"
    async with http.get(url) as response:
        response.raise_for_status()
        return dict(await response.json())


async def disconnect(
    http: aiohttp.ClientSession, endpoints: ProductEndpoints, user: ConnectedUser
) -> tuple[int, dict[str, Any]]:
    """`POST /v1/connections/{id}/disconnect` (C5): its status and body."""
    url = f"{service_url(endpoints, user.provider)}/v1/connections/{user.connection_id}/disconnect"
    async with http.post(url) as response:
        return response.status, dict(await response.json(content_type=None))


async def update_email(
    http: aiohttp.ClientSession, endpoints: ProductEndpoints, user: ConnectedUser, new_address: str
) -> tuple[int, dict[str, Any]]:
    """Update email (C4): the CRM asks for an authorization URL, the user signs in to `new_address`;
    the callback's status and body (`change: "mailbox_replaced"` on success)."""
    url = await authorization_url(
        http,
        service_url(endpoints, user.provider),
        f"/v1/connections/{user.connection_id}/update-email",
        {"login_hint": new_address},
    )
    if user.provider == "gmail":
        return await consent_gmail(http, url)
    return await sign_in_outlook(http, url, str(endpoints.graph_ca_file))


async def authorize(
    http: aiohttp.ClientSession,
    endpoints: ProductEndpoints,
    provider: Literal["gmail", "outlook"],
    subaccount_id: str,
    user_id: str,
    *,
    address: str,
) -> tuple[int, dict[str, Any]]:
    """Connect or re-authenticate (C2, C6) through the provider's OAuth pages; the callback's status and
    body, whatever they are (a refused grant included)."""
    url = await authorization_url(
        http,
        service_url(endpoints, provider),
        "/v1/connections/authorize",
        {"subaccount_id": subaccount_id, "user_id": user_id, "login_hint": address},
    )
    if provider == "gmail":
        return await consent_gmail(http, url)
    return await sign_in_outlook(http, url, str(endpoints.graph_ca_file))


async def connect_gmail_mailbox(
    seeder: Seeder, subaccount_id: str, user_id: str, address: str
) -> ConnectedUser:
    """Connect a Gmail mailbox that already exists at the provider (with its mail): the CRM announces the
    user, the user consents, and the call returns once the sender knows the connection."""
    await seeder.crm.upsert_user(subaccount_id, user_id, [address])
    body = await connect_gmail(
        seeder.http, seeder.endpoints.ingest_gmail_url, subaccount_id, user_id, address
    )
    connected = ConnectedUser(
        subaccount_id, user_id, address, "gmail", str(body["connection_id"]), str(body["mailbox_id"])
    )
    await gmail_watched(seeder, address)
    await seeder.sender_caught_up(connected.connection_id)
    return connected


async def gmail_watched(seeder: Seeder, address: str, *, within: float = 30.0) -> None:
    """Wait until Gmail watches the mailbox for the product (its mail is notified)."""
    deadline = time.monotonic() + within
    while (await seeder.gmail.mailbox(address)).get("watch") is None:
        if time.monotonic() > deadline:
            raise CrmTimeoutError(f"no Gmail watch on {address} within {within} s")
        await asyncio.sleep(0.2)


def switched(user: ConnectedUser, body: dict[str, Any]) -> ConnectedUser:
    """`user` after the callback `body` of an update email moved it to another mailbox (C4)."""
    return dataclasses.replace(user, address=str(body["email_address"]), mailbox_id=str(body["mailbox_id"]))


async def connection_change(
    crm: Crm, connection_id: str, change: Change, *, within: float = 30.0
) -> ConnectionChanged:
    """The first `ConnectionChanged` of `connection_id` with `change` the CRM received."""

    def found() -> ConnectionChanged | None:
        return next(
            (c for c in crm.connection_changes if c.connection_id == connection_id and c.change == change),
            None,
        )

    await crm.wait_until(lambda: found() is not None, within=within, what=f"{change} of {connection_id}")
    event = found()
    if event is None:
        raise CrmTimeoutError(f"{change} of {connection_id} vanished")
    return event


async def sender_applied(seeder: Seeder, connection_id: str, change: Change) -> ConnectionChanged:
    """Wait until the CRM has seen `change` of the connection and the sender has applied it, so the next
    send command is routed by the new state."""
    event = await connection_change(seeder.crm, connection_id, change)
    await seeder.sender_caught_up(connection_id)
    return event


async def metric_total(http: aiohttp.ClientSession, url: str, name: str, **labels: str) -> float:
    """The sum of the samples of counter `name` (without `_total`) on the service at `url` whose labels
    include `labels`, from its Prometheus text."""
    async with http.get(f"{url}/metrics") as response:
        response.raise_for_status()
        text = await response.text()
    wanted = [f'{key}="{value}"' for key, value in labels.items()]
    total = 0.0
    for line in text.splitlines():
        head, _, value = line.rpartition(" ")
        if head.startswith(f"{name}_total{{") and all(label in head for label in wanted):
            total += float(value)
    return total
