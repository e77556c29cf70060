"""Property test: any valid MessageIngested survives a JSON round trip unchanged."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from mailsync.common.contracts import (
    SNIPPET_MAX_CHARS,
    Address,
    AttachmentMeta,
    BlobRef,
    MessageBody,
    MessageIngested,
)

ids = st.text(st.characters(codec="utf-8"), min_size=1, max_size=40)
emails = st.from_regex(r"\A[A-Za-z0-9._%+'-]{1,20}@[A-Za-z0-9-]{1,20}(\.[a-z]{2,6}){0,2}\Z")
addresses = st.builds(Address, email=emails, name=st.none() | st.text(max_size=40))
_EARLIEST = datetime(2000, 1, 1)  # noqa: DTZ001 - hypothesis bounds are naive; zones come from `timezones`
_LATEST = datetime(2100, 1, 1)  # noqa: DTZ001
instants = st.datetimes(min_value=_EARLIEST, max_value=_LATEST, timezones=st.just(UTC))
blobs = st.builds(
    BlobRef,
    store=st.sampled_from(["gridfs", "s3"]),
    id=ids,
    size_bytes=st.integers(min_value=0, max_value=2**40),
    sha256=st.from_regex(r"\A[0-9a-f]{64}\Z"),
)
attachments = st.builds(
    AttachmentMeta,
    filename=st.text(max_size=60),
    content_type=st.sampled_from(["application/pdf", "image/png", "text/plain"]),
    size_bytes=st.integers(min_value=0, max_value=2**31),
    content_id=st.none() | ids,
    is_inline=st.booleans(),
    provider_attachment_id=st.none() | ids,
    blob=st.none() | blobs,
)


@st.composite
def bodies(draw: st.DrawFn) -> MessageBody:
    text = draw(st.none() | st.text(max_size=200))
    html = draw(st.none() | st.text(max_size=200))
    html_blob = draw(blobs) if html is None and draw(st.booleans()) else None
    return MessageBody(text=text, html=html, html_blob=html_blob)


message_ids = st.builds(
    lambda local, domain: f"<{local}@{domain}>", ids, st.from_regex(r"\A[a-z]{1,10}\.example\Z")
)

messages = st.builds(
    MessageIngested,
    event_id=st.uuids(),
    occurred_at=instants,
    provider=st.sampled_from(["gmail", "outlook"]),
    mailbox_id=ids,
    mailbox_address=emails,
    connection_ids=st.lists(ids, max_size=3).map(tuple),
    provider_message_id=ids,
    provider_thread_id=ids,
    internet_message_id=st.none() | message_ids,
    in_reply_to=st.none() | message_ids,
    references=st.lists(message_ids, max_size=5).map(tuple),
    subject=st.text(max_size=100),
    from_=addresses,
    to=st.lists(addresses, max_size=3).map(tuple),
    cc=st.lists(addresses, max_size=3).map(tuple),
    bcc=st.lists(addresses, max_size=2).map(tuple),
    reply_to=st.lists(addresses, max_size=1).map(tuple),
    direction=st.sampled_from(["inbound", "outbound"]),
    sent_by_owner=st.booleans(),
    sent_at=instants,
    received_at=instants,
    folders=st.lists(st.sampled_from(["INBOX", "SENT", "UNREAD", "Label_12", "sentitems"]), max_size=3).map(
        tuple
    ),
    snippet=st.text(max_size=SNIPPET_MAX_CHARS),
    body=bodies(),
    attachments=st.lists(attachments, max_size=3).map(tuple),
    headers=st.dictionaries(st.from_regex(r"\A[a-z-]{1,20}\Z"), st.text(max_size=50), max_size=4),
)


@settings(max_examples=200, deadline=None)
@given(messages)
def test_any_valid_message_ingested_round_trips_through_json(message: MessageIngested) -> None:
    assert MessageIngested.model_validate_json(message.model_dump_json()) == message


@settings(max_examples=100, deadline=None)
@given(messages)
def test_any_valid_message_ingested_round_trips_through_wire_dict(message: MessageIngested) -> None:
    wire = message.model_dump(mode="json")
    assert "from" in wire
    assert MessageIngested.model_validate(wire) == message
