"""Contract models: JSON round trips, the envelope rules, and the validators that enforce SPEC rules."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from mailsync.common.contracts import (
    INLINE_BODY_MAX_BYTES,
    MAX_RECIPIENTS,
    SNIPPET_MAX_CHARS,
    Address,
    BlobRef,
    ConnectionChanged,
    DeadLettered,
    Event,
    MailboxChanged,
    MessageBody,
    MessageIngested,
    SendCompleted,
    SendEmail,
    SendFailureReason,
    encode_payload,
    examples,
)
from mailsync.common.contracts.examples import EXAMPLES


def _id_of(event: Event) -> str:
    return f"{type(event).__name__}-{str(event.event_id)[-2:]}"


def _payload(event: Event, **changes: Any) -> dict[str, Any]:
    """The example's JSON document with top-level fields replaced (``None`` values delete the field)."""
    document: dict[str, Any] = json.loads(event.model_dump_json())
    for name, value in changes.items():
        if value is None:
            document.pop(name, None)
        else:
            document[name] = value
    return document


def _error_text(model: type[Event], document: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(document)
    return str(caught.value)


# --- round trips ----------------------------------------------------------------------------------


@pytest.mark.parametrize("event", EXAMPLES, ids=_id_of)
def test_every_example_round_trips_through_json(event: Event) -> None:
    assert type(event).model_validate_json(event.model_dump_json()) == event


@pytest.mark.parametrize("event", EXAMPLES, ids=_id_of)
def test_every_example_round_trips_through_python_dict_by_alias(event: Event) -> None:
    assert type(event).model_validate(event.model_dump(mode="json")) == event


def test_from_is_spelled_from_on_the_wire_and_accepted_under_both_names() -> None:
    document = json.loads(examples.MESSAGE_INGESTED.model_dump_json())
    assert "from" in document
    assert "from_" not in document
    assert document["from"] == {"email": "Grace.Hopper@navy.example", "name": "Grace Hopper"}
    assert MessageIngested.model_validate(document).from_ == examples.MESSAGE_INGESTED.from_
    document["from_"] = document.pop("from")
    assert MessageIngested.model_validate(document).from_ == examples.MESSAGE_INGESTED.from_


def test_conversation_message_recorded_uses_the_from_alias_too() -> None:
    document = json.loads(examples.CONVERSATION_MESSAGE_RECORDED.model_dump_json())
    assert document["from"]["email"] == "Grace.Hopper@navy.example"


# --- envelope ---------------------------------------------------------------------------------------


def test_events_are_frozen() -> None:
    with pytest.raises(ValidationError, match="frozen"):
        examples.MESSAGE_INGESTED.subject = "changed"  # type: ignore[misc]


def test_readers_ignore_unknown_fields() -> None:
    document = _payload(examples.SEND_EMAIL_REPLY, priority="high", tracking={"open": True})
    assert SendEmail.model_validate(document) == examples.SEND_EMAIL_REPLY


def test_naive_datetime_is_rejected() -> None:
    document = _payload(examples.SEND_EMAIL_REPLY, requested_at="2026-03-02T09:30:00")
    assert "timezone" in _error_text(SendEmail, document)


def test_naive_python_datetime_is_rejected() -> None:
    with pytest.raises(ValidationError, match="timezone"):
        examples.MAILBOX_CHANGED_GMAIL.model_validate(
            {**examples.MAILBOX_CHANGED_GMAIL.model_dump(), "received_at": datetime(2026, 3, 2, 9, 15)}  # noqa: DTZ001
        )


def test_offset_datetimes_are_normalised_to_utc() -> None:
    document = _payload(examples.SEND_EMAIL_REPLY, requested_at="2026-03-02T10:30:00+01:00")
    command = SendEmail.model_validate(document)
    assert command.requested_at.utcoffset() == timedelta(0)
    assert command.requested_at == datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
    assert command.model_dump_json().count("2026-03-02T09:30:00Z") == 1


def test_schema_version_other_than_1_is_rejected() -> None:
    document = _payload(examples.CONTACT_UPSERTED, schema_version=2)
    assert "schema_version" in _error_text(type(examples.CONTACT_UPSERTED), document)


def test_event_type_of_another_contract_is_rejected() -> None:
    document = _payload(examples.MESSAGE_INGESTED, event_type="mail.mailbox_changed")
    assert "event_type" in _error_text(MessageIngested, document)


def test_envelope_defaults_give_a_fresh_event_id_and_utc_now() -> None:
    document = _payload(examples.SEND_EMAIL_BULK, event_id=None, occurred_at=None)
    first = SendEmail.model_validate(document)
    second = SendEmail.model_validate(document)
    assert first.event_id != second.event_id
    assert first.occurred_at.tzinfo is not None
    assert first.event_type == "sending.send_email"


def test_a_subclass_without_a_literal_event_type_is_refused_at_definition() -> None:
    with pytest.raises(TypeError, match="event_type"):

        class Unnamed(Event):
            pass


# --- Address and bodies ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "email",
    [
        "ada@acme-corp.com",
        "first.last+tag@sub.example.co.uk",
        "USER@EXAMPLE.COM",
        '"odd@quoted"@example.com',
        "postmaster@localhost",
        "josé@bücher.example",
        "o'brien@example.ie",
    ],
)
def test_odd_but_real_addresses_are_accepted(email: str) -> None:
    assert Address(email=email).email == email


@pytest.mark.parametrize(
    "email", ["no-at-sign", "two@@example.com", "a@b@example.com", "@example.com", "ada@", "ada @example.com"]
)
def test_impossible_addresses_are_rejected(email: str) -> None:
    with pytest.raises(ValidationError):
        Address(email=email)


def test_normalized_lowercases_the_whole_address() -> None:
    assert Address(email="Grace.Hopper@Navy.Example").normalized == "grace.hopper@navy.example"


def test_inline_body_part_over_the_limit_must_be_stored() -> None:
    too_big = "x" * (INLINE_BODY_MAX_BYTES + 1)
    with pytest.raises(ValidationError, match="text_blob"):
        MessageBody(text=too_big, size_bytes=len(too_big))


def test_body_part_is_inline_or_stored_not_both() -> None:
    blob = examples.MESSAGE_INGESTED_OUTLOOK_LARGE.body.html_blob
    with pytest.raises(ValidationError, match="not both"):
        MessageBody(html="<p>hi</p>", html_blob=blob, size_bytes=9)


def test_body_size_is_computed_when_omitted() -> None:
    blob = examples.MESSAGE_INGESTED_OUTLOOK_LARGE.body.html_blob
    assert blob is not None
    body = MessageBody(text="héllo", html_blob=blob)
    assert body.size_bytes == len("héllo".encode()) + blob.size_bytes
    assert MessageBody.model_validate_json(body.model_dump_json()) == body


def test_body_size_must_match_its_parts() -> None:
    with pytest.raises(ValidationError, match="add up to 6"):
        MessageBody(text="héllo", size_bytes=5)


def test_snippet_is_bounded() -> None:
    document = _payload(examples.MESSAGE_INGESTED, snippet="y" * (SNIPPET_MAX_CHARS + 1))
    assert "snippet" in _error_text(MessageIngested, document)


def test_blob_sha256_must_be_lowercase_hex() -> None:
    with pytest.raises(ValidationError, match="sha256"):
        BlobRef(store="gridfs", id="1", size_bytes=1, sha256="ABC")


def test_mailbox_changed_keeps_provider_fields_apart() -> None:
    document = _payload(examples.MAILBOX_CHANGED_OUTLOOK, history_id=12)
    assert "Gmail-only" in _error_text(MailboxChanged, document)
    document = _payload(examples.MAILBOX_CHANGED_GMAIL, subscription_id="sub-1")
    assert "Outlook-only" in _error_text(MailboxChanged, document)


# --- SendEmail ------------------------------------------------------------------------------------------


def test_send_without_any_recipient_is_rejected() -> None:
    document = _payload(examples.SEND_EMAIL_REPLY, to=[], cc=[], bcc=[])
    assert "at least one recipient" in _error_text(SendEmail, document)


def test_send_with_only_a_bcc_recipient_is_accepted() -> None:
    bcc = [{"email": "grace.hopper@navy.example"}]
    command = SendEmail.model_validate(_payload(examples.SEND_EMAIL_BULK, to=[], bcc=bcc))
    assert [address.email for address in command.recipients] == ["grace.hopper@navy.example"]


def test_send_with_too_many_recipients_is_rejected() -> None:
    many = [{"email": f"r{n}@example.com"} for n in range(MAX_RECIPIENTS + 1)]
    assert "at most" in _error_text(SendEmail, _payload(examples.SEND_EMAIL_BULK, to=many))


@pytest.mark.parametrize("request_id", ["", "has space", "tab\there", "x" * 129, "naïve"])
def test_s7_request_id_must_be_a_bounded_printable_key(request_id: str) -> None:
    document = _payload(examples.SEND_EMAIL_REPLY, request_id=request_id)
    assert "request_id" in _error_text(SendEmail, document)


def test_s7_request_id_is_required() -> None:
    document = _payload(examples.SEND_EMAIL_REPLY, request_id=None)
    assert "request_id" in _error_text(SendEmail, document)


def test_s1_individual_send_needs_the_user() -> None:
    document = _payload(examples.SEND_EMAIL_REPLY, user_id=None)
    assert "user_id" in _error_text(SendEmail, document)


def test_s2_bulk_send_needs_no_user() -> None:
    assert examples.SEND_EMAIL_BULK.user_id is None


def test_send_needs_a_body_part() -> None:
    document = _payload(examples.SEND_EMAIL_BULK, body={"size_bytes": 0})
    assert "text or html" in _error_text(SendEmail, document)


def test_send_attachments_must_be_stored_blobs() -> None:
    attachment = {"filename": "a.pdf", "content_type": "application/pdf", "size_bytes": 10}
    document = _payload(examples.SEND_EMAIL_REPLY, attachments=[attachment])
    assert "store the content" in _error_text(SendEmail, document)


def test_send_attachment_size_must_match_its_blob() -> None:
    attachment = json.loads(examples.SEND_EMAIL_REPLY.attachments[0].model_dump_json())
    attachment["size_bytes"] += 1
    document = _payload(examples.SEND_EMAIL_REPLY, attachments=[attachment])
    assert "size_bytes" in _error_text(SendEmail, document)


def test_s6_reply_context_must_agree_with_the_conversation() -> None:
    document = _payload(examples.SEND_EMAIL_REPLY, conversation_id="conv_other")
    assert "reply_context.conversation_id" in _error_text(SendEmail, document)


def test_s6_reply_context_needs_in_reply_to() -> None:
    context = json.loads(examples.SEND_EMAIL_REPLY.model_dump_json())["reply_context"]
    del context["in_reply_to"]
    document = _payload(examples.SEND_EMAIL_REPLY, reply_context=context)
    assert "in_reply_to" in _error_text(SendEmail, document)


def test_send_errors_name_every_broken_field() -> None:
    document = _payload(examples.SEND_EMAIL_REPLY, kind="newsletter", subaccount_id="", requested_at=None)
    text = _error_text(SendEmail, document)
    assert "kind" in text
    assert "subaccount_id" in text
    assert "requested_at" in text


# --- SendCompleted --------------------------------------------------------------------------------------


def test_refused_result_without_reason_is_rejected() -> None:
    document = _payload(examples.SEND_COMPLETED_QUOTA_EXCEEDED, reason=None, quota_resets_at=None)
    assert "needs reason" in _error_text(SendCompleted, document)


def test_sent_result_with_a_reason_is_rejected() -> None:
    document = _payload(examples.SEND_COMPLETED_SENT, reason="provider_rejected")
    assert "no reason" in _error_text(SendCompleted, document)


def test_s1_result_sent_through_a_mailbox_carries_provider_ids() -> None:
    document = _payload(examples.SEND_COMPLETED_SENT, provider_thread_id=None, provider_message_id=None)
    text = _error_text(SendCompleted, document)
    assert "provider_message_id" in text
    assert "provider_thread_id" in text


def test_sent_result_needs_a_route() -> None:
    document = _payload(examples.SEND_COMPLETED_SUBACCOUNT_PROVIDER, route=None)
    assert "needs route" in _error_text(SendCompleted, document)


def test_s2_subaccount_route_has_no_mailbox_connection() -> None:
    document = _payload(examples.SEND_COMPLETED_SUBACCOUNT_PROVIDER, connection_id="conn_ada_acme")
    assert "mailbox route only" in _error_text(SendCompleted, document)


def test_s3_quota_exceeded_needs_the_reset_time() -> None:
    document = _payload(examples.SEND_COMPLETED_QUOTA_EXCEEDED, quota_resets_at=None)
    assert "quota_resets_at" in _error_text(SendCompleted, document)


def test_reset_time_only_for_quota_exceeded() -> None:
    document = _payload(examples.SEND_COMPLETED_FAILED, quota_resets_at="2026-03-03T08:00:00Z")
    assert "only set for quota_exceeded" in _error_text(SendCompleted, document)


def test_failed_result_has_no_provider_message_id() -> None:
    document = _payload(examples.SEND_COMPLETED_FAILED, provider_message_id="18e0")
    assert "nothing was sent" in _error_text(SendCompleted, document)


def test_unknown_failure_reason_is_rejected() -> None:
    document = _payload(examples.SEND_COMPLETED_FAILED, reason="cosmic_rays")
    assert "reason" in _error_text(SendCompleted, document)


def test_failure_reasons_serialise_as_plain_strings() -> None:
    document = json.loads(examples.SEND_COMPLETED_QUOTA_EXCEEDED.model_dump_json())
    assert document["reason"] == "quota_exceeded"
    assert SendFailureReason("quota_exceeded") is SendFailureReason.QUOTA_EXCEEDED


# --- ConnectionChanged ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "status"),
    [("connected", "needs_reauth"), ("reauth_required", "active"), ("disconnected", "active")],
)
def test_c3_status_follows_from_the_change(change: str, status: str) -> None:
    document = _payload(examples.CONNECTION_CONNECTED, change=change, status=status)
    assert "leaves the connection" in _error_text(ConnectionChanged, document)


def test_c4_mailbox_replaced_names_the_previous_mailbox() -> None:
    document = _payload(examples.CONNECTION_MAILBOX_REPLACED, previous_mailbox_id=None)
    assert "C4" in _error_text(ConnectionChanged, document)


def test_c4_replacement_mailbox_differs_from_the_previous_one() -> None:
    document = _payload(examples.CONNECTION_MAILBOX_REPLACED, previous_mailbox_id="mbx_outlook_ada")
    assert "different" in _error_text(ConnectionChanged, document)


def test_previous_mailbox_only_on_mailbox_replaced() -> None:
    document = _payload(examples.CONNECTION_CONNECTED, previous_mailbox_id="mbx_old")
    assert "mailbox_replaced only" in _error_text(ConnectionChanged, document)


def test_c7_connected_at_is_required() -> None:
    document = _payload(examples.CONNECTION_CONNECTED, connected_at=None)
    assert "connected_at" in _error_text(ConnectionChanged, document)


# --- DeadLettered ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("raw", [b'{"ok": true}', b"\x00\xff\xfe binary", b""])
def test_dead_letter_keeps_the_original_bytes(raw: bytes) -> None:
    payload, encoding = encode_payload(raw)
    event = DeadLettered.model_validate(
        _payload(examples.DEAD_LETTERED, payload=payload, payload_encoding=encoding)
    )
    restored = DeadLettered.model_validate_json(event.model_dump_json())
    assert restored.payload_bytes() == raw


def test_dead_letter_binary_example_is_base64() -> None:
    assert examples.DEAD_LETTERED_BINARY.payload_encoding == "base64"
    assert examples.DEAD_LETTERED_BINARY.payload_bytes() == b"\x00\x9f\x92\x96 not json"


def test_dead_letter_rejects_invalid_base64() -> None:
    document = _payload(examples.DEAD_LETTERED, payload="not base64!", payload_encoding="base64")
    assert "base64" in _error_text(DeadLettered, document)


# --- the examples themselves ----------------------------------------------------------------------------


def test_examples_are_deterministic() -> None:
    assert all(str(event.event_id).startswith("00000000-0000-4000-8000-") for event in EXAMPLES)
    assert len({event.event_id for event in EXAMPLES}) == len(EXAMPLES)
