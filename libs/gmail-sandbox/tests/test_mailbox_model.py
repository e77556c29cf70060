"""The mailbox model, MIME rendering and search: pure, no HTTP."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailsync.gmail_sandbox import mime
from mailsync.gmail_sandbox.mailbox import HistoryType, MailStore, StaleHistoryError, WatchState
from mailsync.gmail_sandbox.search import compile_query

NOW = 1_767_225_600.0


def _store() -> MailStore:
    return MailStore(seed=7, now=lambda: NOW)


def _raw(subject: str = "Hi") -> bytes:
    return mime.compose(
        sender="bob@outside.example", to=["alice@example.com"], subject=subject, text="t", now=NOW
    )


@settings(max_examples=30)
@given(operations=st.lists(st.sampled_from(["add", "label", "unlabel", "delete"]), min_size=1, max_size=25))
def test_history_ids_grow_strictly_and_are_not_contiguous(operations: list[str]) -> None:
    mailbox = _store().create("alice@example.com")
    rng = random.Random(1)  # noqa: S311 - test data
    for operation in operations:
        ids = list(mailbox.messages)
        if operation == "add" or not ids:
            mailbox.add_message(_raw(), {"INBOX"}, NOW, received=True)
        elif operation == "label":
            mailbox.modify_labels(rng.choice(ids), ["STARRED"], [], NOW)
        elif operation == "unlabel":
            mailbox.modify_labels(rng.choice(ids), [], ["INBOX", "STARRED"], NOW)
        else:
            mailbox.delete_message(rng.choice(ids), NOW)
    record_ids = [r.id for r in mailbox.history]
    assert record_ids == sorted(set(record_ids))
    assert record_ids[-1] == mailbox.history_id


def test_history_retention_makes_old_start_ids_stale() -> None:
    mailbox = _store().create("alice@example.com", history_retention_seconds=3600)
    start = mailbox.history_id
    first = mailbox.add_message(_raw(), {"INBOX"}, NOW, received=True)
    assert [r.type for r in mailbox.history_after(start, NOW)] == [HistoryType.MESSAGE_ADDED]
    mailbox.add_message(_raw(), {"INBOX"}, NOW + 3000, received=True)
    with pytest.raises(StaleHistoryError):
        mailbox.history_after(start, NOW + 3700)
    assert len(mailbox.history_after(first.history_id, NOW + 3700)) == 1


def test_watch_label_filter() -> None:
    mailbox = _store().create("alice@example.com")
    message = mailbox.add_message(_raw(), {"INBOX"}, NOW, received=True)
    record = mailbox.history[-1]
    assert WatchState("t", frozenset({"INBOX"}), "include", 0).matches(record)
    assert not WatchState("t", frozenset({"INBOX"}), "exclude", 0).matches(record)
    assert not WatchState("t", frozenset({"SENT"}), "include", 0).matches(record)
    assert WatchState("t", frozenset(), "include", 0).matches(record)
    assert message.id in mailbox.messages


def test_prepare_outgoing_keeps_body_and_adds_headers() -> None:
    raw = b"To: carol@x.example\r\nFrom: Mallory <mallory@evil.example>\r\nSubject: s\r\n\r\nbody line\r\n"
    prepared = mime.prepare_outgoing(raw, "alice@example.com", "Alice", NOW)
    parsed = mime.parse(prepared)
    assert parsed["From"] == "Alice <alice@example.com>"
    assert parsed["Message-ID"].endswith("@mail.gmail.com>")
    assert parsed["Date"]
    assert prepared.endswith(b"\r\n\r\nbody line\r\n")
    assert b"Bcc" not in mime.strip_bcc(prepared.replace(b"Subject:", b"Bcc: x@y.example\r\nSubject:"))


def test_snippet_is_html_escaped() -> None:
    raw = mime.compose(
        sender="b@x.example", to=["a@x.example"], subject="s", text="It's  <fine>\n& ok", now=NOW
    )
    assert mime.snippet(mime.parse(raw)) == "It&#39;s &lt;fine&gt; &amp; ok"


def test_search_terms() -> None:
    mailbox = _store().create("alice@example.com")
    inbound = mailbox.add_message(_raw("Quarterly report"), {"INBOX", "UNREAD"}, NOW, received=True)
    sent = mailbox.add_message(_raw("Lunch"), {"SENT"}, NOW + 86_400)

    def run(query: str, now: float = NOW + 86_400) -> list[str]:
        predicate = compile_query(query, now)
        return [m.id for m in mailbox.messages.values() if predicate(m)]

    assert run("in:sent") == [sent.id]
    assert run("is:unread") == [inbound.id]
    assert run("subject:quarterly") == [inbound.id]
    assert run("-in:sent") == [inbound.id]
    assert run(f"rfc822msgid:{inbound.rfc_message_id.strip('<>')}") == [inbound.id]
    assert run(f"after:{int(NOW + 1)}") == [sent.id]
    assert run(f"before:{int(NOW + 1)}") == [inbound.id]
    assert run("newer_than:1d", now=NOW + 86_400 * 1.5) == [sent.id]
    assert run("from:bob@outside.example") == [inbound.id, sent.id]
    assert run("report") == [inbound.id]
    with pytest.raises(Exception, match="Unsupported"):
        run("a OR b")
