"""The topic registry: every topic has a model, a key function, owners and a dead-letter topic."""

from __future__ import annotations

import json

import pytest

from mailsync.common.contracts import (
    CONNECTIONS_CHANGED,
    CONTRACTS,
    CONVERSATION_MESSAGES_RECORDED,
    CRM_DIRECTORY,
    DEAD_LETTER_MODEL,
    MAILBOX_CHANGED,
    MESSAGES_INGESTED,
    MESSAGES_NOT_SYNCED,
    SEND_COMMANDS,
    SEND_RESULTS,
    ContactRemoved,
    ContactUpserted,
    DeadLettered,
    Event,
    SubaccountUserRemoved,
    SubaccountUserUpserted,
    TopicContract,
    contract_for,
    dead_letter_key,
    dead_letter_topic,
    examples,
    parse_directory_event,
)
from mailsync.common.contracts.examples import EXAMPLES

EXPECTED_KEYS = {
    MAILBOX_CHANGED: (examples.MAILBOX_CHANGED_GMAIL, "mbx_gmail_ada"),
    MESSAGES_INGESTED: (examples.MESSAGE_INGESTED, "mbx_gmail_ada"),
    CONNECTIONS_CHANGED: (examples.CONNECTION_MAILBOX_REPLACED, "conn_ada_acme"),
    CRM_DIRECTORY: (examples.CONTACT_UPSERTED, "loc_acme"),
    SEND_COMMANDS: (examples.SEND_EMAIL_REPLY, "crm-conversations:msg_01HQ7Z4X"),
    SEND_RESULTS: (examples.SEND_COMPLETED_SENT, "crm-conversations:msg_01HQ7Z4X"),
    CONVERSATION_MESSAGES_RECORDED: (examples.CONVERSATION_MESSAGE_RECORDED, "loc_acme:con_grace"),
    MESSAGES_NOT_SYNCED: (examples.MESSAGE_NOT_SYNCED, "mbx_gmail_ada"),
}


def _topic(contract: TopicContract[object]) -> str:
    return contract.topic


def test_topic_names_are_unique_versioned_and_registered() -> None:
    topics = [contract.topic for contract in CONTRACTS]
    assert len(set(topics)) == len(topics)
    assert set(topics) == set(EXPECTED_KEYS)
    for topic in topics:
        assert topic.startswith("mailsync.")
        assert topic.endswith(".v1")


@pytest.mark.parametrize("contract", CONTRACTS, ids=_topic)
def test_every_topic_has_models_key_owners_and_a_dead_letter_topic(contract: TopicContract[object]) -> None:
    assert contract.models
    assert all(issubclass(model, Event) for model in contract.models)
    assert contract.key
    assert callable(contract.key_of)
    assert contract.producers
    assert contract.consumers
    assert contract.purpose
    assert contract.dead_letter_topic == contract.topic + ".dlt"
    assert contract.dead_letter_topic not in {other.topic for other in CONTRACTS}


@pytest.mark.parametrize("contract", CONTRACTS, ids=_topic)
def test_key_function_gives_the_documented_key(contract: TopicContract[object]) -> None:
    event, key = EXPECTED_KEYS[contract.topic]
    assert contract.key_of(event) == key


TOPIC_EXAMPLES = [event for event in EXAMPLES if not isinstance(event, DeadLettered)]


@pytest.mark.parametrize(
    "event", TOPIC_EXAMPLES, ids=lambda event: f"{type(event).__name__}-{str(event.event_id)[-2:]}"
)
def test_every_example_parses_on_exactly_one_topic(event: Event) -> None:
    contracts = [contract for contract in CONTRACTS if type(event) in contract.models]
    assert len(contracts) == 1
    (contract,) = contracts
    assert contract.parse(contract.serialize(event)) == event
    assert isinstance(contract.key_of(event), str)


def test_dead_letter_key_is_the_original_key_else_the_coordinates() -> None:
    assert dead_letter_key(examples.DEAD_LETTERED_BINARY) == "mbx_gmail_ada"
    assert dead_letter_key(examples.DEAD_LETTERED) == "mailsync.send.commands.v1:3:120488"
    assert DEAD_LETTER_MODEL is DeadLettered


def test_the_mailbox_keyed_topics_share_one_key_per_mailbox() -> None:
    """All work for a mailbox shares a partition: hints, ingested messages and not-synced reports."""
    keys = {
        contract_for(MAILBOX_CHANGED).key_of(examples.MAILBOX_CHANGED_GMAIL),
        contract_for(MESSAGES_INGESTED).key_of(examples.MESSAGE_INGESTED),
        contract_for(MESSAGES_NOT_SYNCED).key_of(examples.MESSAGE_NOT_SYNCED),
    }
    assert keys == {"mbx_gmail_ada"}


def test_s7_command_and_result_share_the_request_id_key() -> None:
    command_key = contract_for(SEND_COMMANDS).key_of(examples.SEND_EMAIL_REPLY)
    assert command_key == contract_for(SEND_RESULTS).key_of(examples.SEND_COMPLETED_SENT)


def test_contract_for_unknown_topic_raises() -> None:
    with pytest.raises(KeyError):
        contract_for("mailsync.unknown.v1")


def test_dead_letter_topic_name() -> None:
    assert dead_letter_topic(SEND_COMMANDS) == "mailsync.send.commands.v1.dlt"


@pytest.mark.parametrize(
    "event",
    [
        examples.SUBACCOUNT_USER_UPSERTED,
        examples.SUBACCOUNT_USER_REMOVED,
        examples.CONTACT_UPSERTED,
        examples.CONTACT_REMOVED,
    ],
    ids=lambda event: type(event).__name__,
)
def test_directory_union_parses_each_variant(event: Event) -> None:
    parsed = parse_directory_event(event.model_dump_json())
    assert type(parsed) is type(event)
    assert parsed == event


def test_directory_topic_lists_every_variant() -> None:
    models = set(contract_for(CRM_DIRECTORY).models)
    assert models == {SubaccountUserUpserted, SubaccountUserRemoved, ContactUpserted, ContactRemoved}


def test_directory_union_rejects_an_unknown_event_type() -> None:
    with pytest.raises(ValueError, match="event_type"):
        parse_directory_event(b'{"event_type": "directory.team_created", "subaccount_id": "loc_acme"}')


def test_directory_upsert_needs_a_revision() -> None:
    """Consumers ignore stale updates by revision, so a directory event without one is rejected."""
    document = examples.CONTACT_UPSERTED.model_dump(mode="json")
    del document["revision"]
    with pytest.raises(ValueError, match="revision"):
        parse_directory_event(json.dumps(document))


def test_p4_contact_upsert_needs_its_creation_time() -> None:
    """P4 files a message matching several contacts under the oldest: created_at must be present."""
    document = examples.CONTACT_UPSERTED.model_dump(mode="json")
    del document["created_at"]
    with pytest.raises(ValueError, match="created_at"):
        parse_directory_event(json.dumps(document))


def test_p6_user_upsert_carries_the_bcc_address() -> None:
    parsed = parse_directory_event(examples.SUBACCOUNT_USER_UPSERTED.model_dump_json())
    assert isinstance(parsed, SubaccountUserUpserted)
    assert parsed.bcc_address == "bcc.usr_ada@inbound.crm.example"
