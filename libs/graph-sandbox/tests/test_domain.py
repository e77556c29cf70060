"""The pure domain: threading rules, conversation index, $filter, and delta convergence (property-based)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailsync.graph_sandbox import identifiers
from mailsync.graph_sandbox.clock import ManualClock, parse_graph_timestamp, to_graph_precise_timestamp
from mailsync.graph_sandbox.delta import SyncOptions, SyncStateCache, delta_page
from mailsync.graph_sandbox.directory import Directory
from mailsync.graph_sandbox.errors import GraphError
from mailsync.graph_sandbox.identity import AppRegistration
from mailsync.graph_sandbox.mailbox import Draft, EmailAddress, Mailbox, normalize_subject, threading_headers
from mailsync.graph_sandbox.notifications import DeliveryPolicy
from mailsync.graph_sandbox.odata_query import parse_filter
from mailsync.graph_sandbox.subscriptions import MAX_LIFETIME, MIN_LIFETIME
from mailsync.graph_sandbox.throttling import ThrottlePolicy
from mailsync.graph_sandbox.uploads import MAX_SESSION_BYTES, MIN_SESSION_BYTES


def _directory() -> tuple[Directory, ManualClock]:
    clock = ManualClock(dt.datetime(2026, 3, 1, tzinfo=dt.UTC))
    return Directory(tenant_id="t", message_id_host="host.example", clock=clock.now), clock


def _inbound(
    directory: Directory, to: Mailbox, subject: str, headers: tuple[tuple[str, str], ...] = ()
) -> Any:
    sender = directory.create(f"sender{len(directory.all())}@fabrikam.example")
    draft = sender.create_draft(Draft(subject=subject, to=(to.identity,), custom_headers=headers))
    directory.transport(sender.send(draft))
    return to.in_folder(to.well_known("inbox").id)[0]


def test_documented_defaults() -> None:
    assert (
        ThrottlePolicy().requests_per_window,
        ThrottlePolicy().window_s,
        ThrottlePolicy().max_concurrent,
    ) == (
        10_000,
        600.0,
        4,
    )
    policy = DeliveryPolicy()
    assert (policy.validation_timeout_s, policy.delivery_timeout_s, policy.slow_threshold_s) == (
        10.0,
        3.0,
        2.9,
    )
    assert (policy.retry_horizon_s, policy.health_min_samples, policy.delay_ratio, policy.drop_ratio) == (
        14_400.0,
        100,
        0.10,
        0.15,
    )
    assert dt.timedelta(minutes=10080) == MAX_LIFETIME
    assert dt.timedelta(minutes=45) == MIN_LIFETIME
    assert MIN_SESSION_BYTES == 3 * 1024 * 1024
    assert MAX_SESSION_BYTES == 150 * 1024 * 1024


def test_reply_headers_follow_rfc_5322() -> None:
    directory, _ = _directory()
    alice = directory.create("alice@contoso.example")
    first = _inbound(directory, alice, "Hello")
    assert threading_headers(first) == [
        ("In-Reply-To", first.internet_message_id),
        ("References", first.internet_message_id),
    ]
    reply = alice.create_reply(first, reply_all=False)
    directory.transport(alice.send(reply))
    second = threading_headers(reply)
    assert second == [
        ("In-Reply-To", reply.internet_message_id),
        ("References", f"{first.internet_message_id} {reply.internet_message_id}"),
    ]


def test_subject_normalization_and_single_re_prefix() -> None:
    assert normalize_subject("RE: Fwd: re:  Budget ") == "budget"
    directory, _ = _directory()
    alice = directory.create("alice@contoso.example")
    message = _inbound(directory, alice, "RE: Budget")
    assert alice.create_reply(message, reply_all=False).subject == "RE: Budget"


def test_conversation_index_grows_by_five_bytes_per_reply() -> None:
    moment = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
    root = identifiers.new_conversation_index(moment)
    assert len(root) == 22
    assert root[0] == 1
    # five FILETIME bytes drop the low 24 bits: a resolution of about 1.7 s
    assert abs(identifiers.conversation_index_time(root) - moment) < dt.timedelta(seconds=2)
    child = identifiers.child_conversation_index(root, moment + dt.timedelta(minutes=5))
    assert child[:22] == root
    assert len(child) == 27
    assert identifiers.conversation_index_guid(child) == identifiers.conversation_index_guid(root)


def test_inbound_joins_by_references_only_with_the_same_topic() -> None:
    directory, _ = _directory()
    alice = directory.create("alice@contoso.example")
    first = _inbound(directory, alice, "Invoice 7")
    linked = _inbound(directory, alice, "Re: Invoice 7", (("In-Reply-To", first.internet_message_id),))
    other_topic = _inbound(directory, alice, "Something else", (("References", first.internet_message_id),))
    assert linked.conversation_id == first.conversation_id
    assert other_topic.conversation_id != first.conversation_id


def test_filter_parser() -> None:
    clauses = parse_filter("receivedDateTime ge 2026-01-01T00:00:00Z and subject eq 'It''s'")
    assert [(c.prop, c.op) for c in clauses] == [("receivedDateTime", "ge"), ("subject", "eq")]
    assert clauses[1].value == "It's"
    for bad in (
        "subject eq 3",
        "isRead gt true",
        "foo eq 'x'",
        "receivedDateTime ge 'x'",
        "contains(subject,'a')",
    ):
        with pytest.raises(GraphError):
            parse_filter(bad)


def test_graph_timestamps_round_trip() -> None:
    moment = dt.datetime(2026, 3, 1, 12, 30, 15, 123456, tzinfo=dt.UTC)
    assert parse_graph_timestamp(to_graph_precise_timestamp(moment)) == moment
    assert parse_graph_timestamp("2026-03-01T12:30:15+02:00") == dt.datetime(
        2026, 3, 1, 10, 30, 15, tzinfo=dt.UTC
    )


_OPERATIONS = st.lists(
    st.tuples(
        st.sampled_from(["deliver", "read", "move_out", "move_in", "delete", "sync"]), st.integers(0, 9)
    ),
    max_size=40,
)


@settings(max_examples=60, deadline=None)
@given(operations=_OPERATIONS, page_size=st.integers(1, 4))
def test_delta_rounds_converge_to_the_folder(operations: list[tuple[str, int]], page_size: int) -> None:
    """Whatever happens between rounds, applying every round's items to a replica reproduces the folder."""
    directory, clock = _directory()
    alice = directory.create("alice@contoso.example")
    inbox, trash = alice.well_known("inbox"), alice.well_known("deleteditems")
    cache = SyncStateCache(capacity=100)
    replica: dict[str, bool] = {}
    delta_token: str | None = None

    def sync() -> None:
        nonlocal delta_token
        page = (
            delta_page(cache, alice, inbox.id, page_size=page_size, delta_token=delta_token)
            if delta_token
            else delta_page(cache, alice, inbox.id, page_size=page_size, options=SyncOptions(None, (), None))
        )
        while True:
            for item in page.items:
                if "@removed" in item:
                    replica.pop(item["id"], None)
                else:
                    replica[item["id"]] = item["isRead"]
            if page.delta_token is not None:
                delta_token = page.delta_token
                return
            page = delta_page(cache, alice, inbox.id, page_size=page_size, skip_token=page.skip_token)

    for action, pick in operations:
        clock.advance(1)
        messages = list(alice.messages.values())
        target = messages[pick % len(messages)] if messages else None
        if action == "deliver":
            _inbound(directory, alice, f"m{pick}")
        elif action == "sync":
            sync()
        elif target is None:
            continue
        elif action == "read":
            alice.update(target, lambda m: setattr(m, "is_read", not m.is_read))
        elif action == "move_out":
            alice.move(target, trash)
        elif action == "move_in":
            alice.move(target, inbox)
        else:
            alice.delete(target)
    sync()
    expected = {m.id: m.is_read for m in alice.in_folder(inbox.id)}
    assert replica == expected


def test_recipient_of_bcc_sees_only_itself() -> None:
    directory, _ = _directory()
    alice = directory.create("alice@contoso.example")
    bob = directory.create("bob@contoso.example")
    carol = directory.create("carol@contoso.example")
    draft = alice.create_draft(
        Draft(subject="s", to=(EmailAddress("x@fabrikam.example"),), bcc=(bob.identity, carol.identity))
    )
    directory.transport(alice.send(draft))
    received = bob.in_folder(bob.well_known("inbox").id)[0]
    assert [r.address for r in received.bcc] == ["bob@contoso.example"]
    assert [d.recipients for d in directory.external] == [("x@fabrikam.example",)]


def test_default_app_accepts_only_loopback_redirects() -> None:
    app = AppRegistration("id", "secret")
    assert app.allows_redirect("http://localhost:8400/cb")
    assert app.allows_redirect("https://127.0.0.1/cb")
    assert not app.allows_redirect("http://localhost.evil.example/cb")
    assert AppRegistration("id", "secret", ("https://app.example/cb",)).allows_redirect(
        "https://app.example/cb"
    )
