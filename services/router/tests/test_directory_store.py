"""The users and bindings a batch routes with are never older than the versions it read first
(`DirectoryStore.users_in`, `ConnectionStore.bindings_of`, `adapters.versions`).

Two stores stand for two router instances on one database of the real MongoDB-wire server: one applies the
events, the other keeps what it read in memory between batches.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from mailsync.common.contracts import ConnectionChanged, SubaccountUserRemoved, SubaccountUserUpserted
from mailsync.common.mongo import Document
from mailsync.router.adapters.connection_store import ConnectionStore
from mailsync.router.adapters.directory_store import DirectoryStore

pytestmark = pytest.mark.mongodb

T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


def upserted(user_id: str, address: str, revision: int) -> SubaccountUserUpserted:
    return SubaccountUserUpserted(
        occurred_at=T0,
        subaccount_id="loc_a",
        user_id=user_id,
        email_addresses=(address,),
        revision=revision,
    )


@pytest.fixture
async def stores(
    mongodb_uri: str, unique_name: Callable[[str], str]
) -> AsyncIterator[tuple[DirectoryStore, DirectoryStore, AsyncDatabase[Document]]]:
    client: AsyncMongoClient[Document] = AsyncMongoClient(mongodb_uri)
    database = client[unique_name("directory")]
    writer, reader = DirectoryStore(database), DirectoryStore(database)
    await writer.ensure_indexes()
    yield writer, reader, database
    await client.drop_database(database.name)
    await client.close()


async def addresses(store: DirectoryStore) -> dict[str, set[str]]:
    users = (await store.users_in(["loc_a"]))["loc_a"]
    return {u.user_id: set(u.addresses) for u in users}


async def test_users_kept_between_batches_follow_every_user_event(
    stores: tuple[DirectoryStore, DirectoryStore, AsyncDatabase[Document]],
) -> None:
    writer, reader, _ = stores
    assert await addresses(reader) == {}

    await writer.apply(upserted("usr_ada", "ada@acme.example", 1))
    assert await addresses(reader) == {"usr_ada": {"ada@acme.example"}}

    await writer.apply(upserted("usr_bob", "bob@acme.example", 1))
    await writer.apply(upserted("usr_ada", "ada@new.example", 2))
    assert await addresses(reader) == {"usr_ada": {"ada@new.example"}, "usr_bob": {"bob@acme.example"}}

    await writer.apply(
        SubaccountUserRemoved(occurred_at=T0, subaccount_id="loc_a", user_id="usr_bob", revision=2)
    )
    assert await addresses(reader) == {"usr_ada": {"ada@new.example"}}

    assert not await writer.apply(upserted("usr_bob", "bob@acme.example", 1)), "stale: the tombstone stays"
    assert await addresses(reader) == {"usr_ada": {"ada@new.example"}}


async def test_a_user_written_without_its_version_is_seen_once_the_event_is_redelivered(
    stores: tuple[DirectoryStore, DirectoryStore, AsyncDatabase[Document]],
) -> None:
    """A crash between writing a user and moving the version on: the redelivered event moves it on."""
    writer, reader, database = stores
    await writer.apply(upserted("usr_ada", "ada@acme.example", 1))
    assert await addresses(reader) == {"usr_ada": {"ada@acme.example"}}

    event = upserted("usr_cy", "cy@acme.example", 1)
    await database["directory_users"].insert_one(
        {
            "_id": "loc_a|usr_cy",
            "subaccount_id": "loc_a",
            "user_id": "usr_cy",
            "addresses": ["cy@acme.example"],
            "bcc_address": None,
            "removed": False,
            "revision": 1,
        }
    )
    assert await addresses(reader) == {"usr_ada": {"ada@acme.example"}}, "the version did not move"

    assert not await writer.apply(event), "the redelivery finds the user written"
    assert await addresses(reader) == {"usr_ada": {"ada@acme.example"}, "usr_cy": {"cy@acme.example"}}


def connection(change: str, status: str, mailbox_id: str, **previous: str) -> ConnectionChanged:
    return ConnectionChanged(
        occurred_at=T0,
        connection_id="conn_ada",
        subaccount_id="loc_a",
        user_id="usr_ada",
        provider="gmail",
        mailbox_id=mailbox_id,
        email_address=f"{mailbox_id}@acme.example",
        status=status,  # type: ignore[arg-type]
        change=change,  # type: ignore[arg-type]
        connected_at=T0,
        **previous,  # type: ignore[arg-type]
    )


async def test_bindings_kept_between_batches_follow_every_connection_event(
    stores: tuple[DirectoryStore, DirectoryStore, AsyncDatabase[Document]],
) -> None:
    """C4, C5: a mailbox switch and a disconnect reach the bindings another instance keeps in memory."""
    _, _, database = stores
    writer, reader = ConnectionStore(database), ConnectionStore(database)
    await writer.ensure_indexes()

    async def bindings() -> dict[str, list[tuple[str, str | None]]]:
        found = await reader.bindings_of(["mbx_old", "mbx_new"])
        return {
            m: [(b.connection_id, b.ended_by) for b in found_bindings] for m, found_bindings in found.items()
        }

    assert await bindings() == {}
    await writer.apply(connection("connected", "active", "mbx_old"))
    assert await bindings() == {"mbx_old": [("conn_ada", None)]}

    await writer.apply(
        connection(
            "mailbox_replaced",
            "active",
            "mbx_new",
            previous_mailbox_id="mbx_old",
            previous_email_address="mbx_old@acme.example",
        )
    )
    assert await bindings() == {"mbx_old": [("conn_ada", "replaced")], "mbx_new": [("conn_ada", None)]}

    await writer.apply(connection("disconnected", "disconnected", "mbx_new"))
    assert await bindings() == {
        "mbx_old": [("conn_ada", "replaced")],
        "mbx_new": [("conn_ada", "disconnected")],
    }
