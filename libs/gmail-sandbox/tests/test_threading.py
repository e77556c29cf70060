"""Gmail's threading rules for sends and for received mail."""

from __future__ import annotations

import base64
from email.message import EmailMessage
from typing import Any

import aiohttp
from hypothesis import given
from hypothesis import strategies as st

from mailsync.gmail_sandbox.threading_rules import (
    ThreadCandidate,
    normalize_subject,
    thread_for_received,
    thread_for_send,
)

ALICE = "alice@example.com"
BOB = "bob@outside.example"


@given(
    prefixes=st.lists(
        st.sampled_from(["Re: ", "RE:", "Fwd: ", "FW: ", "re : ", "Aw: ", "Re[2]: "]), max_size=4
    ),
    subject=st.text(alphabet=st.characters(categories=["L", "N"]), min_size=1, max_size=30),
)
def test_normalize_subject_ignores_reply_and_forward_prefixes(prefixes: list[str], subject: str) -> None:
    normalized = normalize_subject("".join(prefixes) + subject)
    assert normalized == normalize_subject(subject)
    assert normalize_subject(normalized) == normalized


def test_send_rule_needs_thread_id_headers_and_subject() -> None:
    members = {"t1": [ThreadCandidate("t1", "<a@x>", "Proposal")]}
    assert thread_for_send("t1", "Re: Proposal", ["<a@x>"], members) == "t1"
    assert thread_for_send(None, "Re: Proposal", ["<a@x>"], members) is None
    assert thread_for_send("t1", "Re: Proposal", [], members) is None
    assert thread_for_send("t1", "Re: Proposal", ["<other@x>"], members) is None
    assert thread_for_send("t1", "Another subject", ["<a@x>"], members) is None


def test_received_rule_follows_references_with_matching_subject() -> None:
    index = {"<a@x>": ThreadCandidate("t1", "<a@x>", "Proposal")}
    assert thread_for_received("RE: Proposal", ["<a@x>"], index) == "t1"
    assert thread_for_received("Something else", ["<a@x>"], index) is None
    assert thread_for_received("Proposal", ["<unknown@x>"], index) is None


def _raw(subject: str, **headers: str) -> str:
    message = EmailMessage()
    message["To"] = BOB
    message["Subject"] = subject
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    message.set_content("body")
    return base64.urlsafe_b64encode(message.as_bytes()).decode()


async def _send(session: Any, running: Any, headers: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
    async with session.post(
        f"{running.base_url}/gmail/v1/users/me/messages/send", headers=headers, json=body
    ) as response:
        assert response.status == 200, await response.text()
        result: dict[str, Any] = await response.json()
        return result


async def test_contact_reply_joins_thread_and_user_reply_stays_in_it(running: Any) -> None:
    headers = await running.auth_headers()
    async with aiohttp.ClientSession() as session:
        first = await _send(session, running, headers, {"raw": _raw("Pricing")})
    sent = await running.admin.message(ALICE, first["id"])
    message_id = sent["headers"]["Message-ID"]

    reply = await running.admin.deliver_inbound(
        ALICE,
        sender=BOB,
        subject="RE: Pricing",
        text="Sounds good",
        in_reply_to=message_id,
        references=message_id,
    )
    assert reply["threadId"] == first["threadId"]

    unrelated = await running.admin.deliver_inbound(ALICE, sender=BOB, subject="Pricing", text="new topic")
    assert unrelated["threadId"] != first["threadId"]  # same subject, no references: a new thread

    answer = await running.admin.reply_as_user(ALICE, reply["id"], "Great, thanks")
    assert answer["threadId"] == first["threadId"]
    assert answer["headers"]["Subject"] == "RE: Pricing"
    assert answer["headers"]["In-Reply-To"] == reply["headers"]["Message-ID"]
    assert answer["headers"]["References"].split() == [message_id, reply["headers"]["Message-ID"]]
    assert answer["headers"]["To"] == BOB

    threads = await running.admin.threads(ALICE)
    by_id = {t["threadId"]: t["messageIds"] for t in threads}
    assert by_id[first["threadId"]] == [first["id"], reply["id"], answer["id"]]


async def test_send_with_thread_id_but_other_subject_starts_a_new_thread(running: Any) -> None:
    headers = await running.auth_headers()
    async with aiohttp.ClientSession() as session:
        first = await _send(session, running, headers, {"raw": _raw("Pricing")})
        original = (await running.admin.message(ALICE, first["id"]))["headers"]["Message-ID"]
        other = await _send(
            session,
            running,
            headers,
            {
                "raw": _raw("Different", In_Reply_To=original, References=original),
                "threadId": first["threadId"],
            },
        )
        assert other["threadId"] != first["threadId"]
        async with session.post(
            f"{running.base_url}/gmail/v1/users/me/messages/send",
            headers=headers,
            json={"raw": _raw("Re: Pricing"), "threadId": "ffffffffffffffff"},
        ) as response:
            assert response.status == 404
