"""Properties of `route_message` over random directories, connections and messages.

The generated worlds are small on purpose: a handful of addresses shared by users, contacts and message
participants, so that collisions the rules must settle (an address on several contacts, a user who is also a
contact, the BCC address in copy, a thread claimed by another subaccount) come up often.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from hypothesis import Phase, find, given, settings
from hypothesis import strategies as st

from mailsync.common.contracts import Address, AttachmentMeta, MessageBody, MessageIngested
from mailsync.router.domain import (
    ContactFacts,
    Filing,
    MailboxBinding,
    RoutingDecision,
    RoutingFacts,
    Skip,
    SubaccountFacts,
    ThreadLink,
    UserFacts,
    conversation_id_for,
    new_contact_id,
    route_message,
)

SUBACCOUNT_IDS = ("loc_a", "loc_b", "loc_c")
USER_IDS = ("usr_1", "usr_2", "usr_3")
POOL = ("p0@one.example", "p1@one.example", "p2@two.example", "p3@two.example", "p4@three.example")
"""Addresses of contacts, of some users, and of message participants."""
STRANGER = "nobody@nowhere.example"
MAILBOX = "owner@mailbox.example"
TIMES = tuple(datetime(2026, 3, day, 12, tzinfo=UTC) for day in (1, 2, 3, 4, 5))
"""Connection times, cut-offs, contact creation times and message times are drawn from these."""


def user_address(user_id: str) -> str:
    return f"{user_id}@crm.example"


def bcc_address(user_id: str) -> str:
    return f"{user_id}.bcc@crm.example"


MESSAGE_ADDRESSES = (*POOL, STRANGER, MAILBOX, *map(user_address, USER_IDS), *map(bcc_address, USER_IDS))
ATTACHMENTS = (
    AttachmentMeta(filename="quote.pdf", size_bytes=200_000),
    AttachmentMeta(filename="video.mp4", size_bytes=5 * 1024 * 1024),
    AttachmentMeta(filename="tool.exe", size_bytes=1_000),
    AttachmentMeta(filename="logo.gif", size_bytes=8 * 1024 * 1024, is_inline=True),
)


# The helpers below take the composite's `draw` rather than being composites themselves: building a
# composite strategy per call is costly, and these run several times per example.

_POOL_SUBSETS = st.lists(st.sampled_from(POOL), min_size=1, max_size=2)
_CREATION_TIMES = st.sampled_from(TIMES)
_CONNECTION_TIMES = st.sampled_from(TIMES[:3])
_ENDINGS = st.sampled_from((None, None, None, "disconnected", "replaced"))


def _draw_users(draw: st.DrawFn) -> tuple[UserFacts, ...]:
    """One to three users; some also carry a pool address, which a contact may carry too (P7)."""
    ids = draw(st.lists(st.sampled_from(USER_IDS), min_size=1, max_size=3, unique=True))
    found = []
    for user_id in ids:
        extra = draw(st.lists(st.sampled_from(POOL), max_size=1))
        found.append(UserFacts(user_id, frozenset({user_address(user_id), *extra}), bcc_address(user_id)))
    return tuple(found)


def _draw_contacts(draw: st.DrawFn, user_ids: list[str]) -> tuple[ContactFacts, ...]:
    """Up to five contacts, mostly assigned to a user of their subaccount, else to nobody or an outsider."""
    assignees = st.sampled_from((None, "usr_elsewhere", *user_ids, *user_ids))
    return tuple(
        ContactFacts(
            contact_id=f"con_{index}",
            addresses=frozenset(draw(_POOL_SUBSETS)),
            assigned_user_id=draw(assignees),
            created_at=draw(_CREATION_TIMES),
        )
        for index in range(draw(st.integers(min_value=0, max_value=5)))
    )


def _draw_subaccount(draw: st.DrawFn, subaccount_id: str) -> SubaccountFacts:
    members = _draw_users(draw)
    held = _draw_contacts(draw, [u.user_id for u in members])
    thread = None
    if draw(st.integers(min_value=0, max_value=3)) == 0:
        owner = draw(st.sampled_from([c.contact_id for c in held] or ["con_gone"]))
        thread = ThreadLink(owner, f"thread-conversation-{subaccount_id}")
    return SubaccountFacts(subaccount_id, users=members, contacts=held, thread=thread)


def _draw_bindings(draw: st.DrawFn, subaccount: SubaccountFacts, first_index: int) -> list[MailboxBinding]:
    """One or two connections of the mailbox in `subaccount`, each with its own life span."""
    found = []
    for index in range(first_index, first_index + draw(st.integers(min_value=1, max_value=2))):
        connection_id = f"conn_{index}"
        user_id = draw(st.sampled_from([u.user_id for u in subaccount.users]))
        bound_from = draw(_CONNECTION_TIMES)
        ended_by = draw(_ENDINGS)
        if ended_by is None:
            found.append(MailboxBinding(connection_id, subaccount.subaccount_id, user_id, bound_from))
            continue
        bound_until = draw(st.sampled_from([t for t in TIMES if t > bound_from]))
        found.append(
            MailboxBinding(
                connection_id,
                subaccount.subaccount_id,
                user_id,
                bound_from,
                bound_until,
                "replaced" if ended_by == "replaced" else "disconnected",
            )
        )
    return found


@st.composite
def routing_facts(draw: st.DrawFn) -> RoutingFacts:
    chosen = draw(st.lists(st.sampled_from(SUBACCOUNT_IDS), min_size=1, max_size=3, unique=True))
    by_id = {subaccount_id: _draw_subaccount(draw, subaccount_id) for subaccount_id in chosen}
    bindings: list[MailboxBinding] = []
    for subaccount in by_id.values():
        bindings += _draw_bindings(draw, subaccount, len(bindings))
    owner = draw(st.sampled_from((None, None, None, None, None, *SUBACCOUNT_IDS)))
    return RoutingFacts(tuple(bindings), by_id, owner)


def _as_written(address: str, case: str) -> Address:
    """`address` in the case a sender might have typed it; facts hold the lower-cased form."""
    written = {"lower": address, "upper": address.upper(), "title": address.title()}[case]
    return Address(email=written, name=f"Name of {address}")


_CASES = st.sampled_from(["lower", "upper", "title"])
_SUBJECTS = st.sampled_from(["Hello", "Re: Hello", "Fwd: Hello", "FW: Hello"])
_ATTACHMENT_LISTS = st.lists(st.sampled_from(ATTACHMENTS), max_size=2)


def _draw_addresses(
    draw: st.DrawFn, choices: tuple[str, ...], min_size: int, max_size: int
) -> tuple[Address, ...]:
    written = st.builds(_as_written, st.sampled_from(choices), _CASES)
    return tuple(draw(st.lists(written, min_size=min_size, max_size=max_size)))


def _draw_message(draw: st.DrawFn, facts: RoutingFacts) -> MessageIngested:
    """A message whose participants are often the facts' contacts and, in copy, a connected user's BCC
    address (P6), but may be anyone in the pool, a user, a stranger or the mailbox itself."""
    known = tuple(sorted({a for s in facts.subaccounts.values() for c in s.contacts for a in c.addresses}))
    connected = {s.user(b.user_id) for b in facts.bindings for s in facts.subaccounts.values()}
    bccs = tuple(sorted(u.bcc_address for u in connected if u is not None and u.bcc_address is not None))
    participants = (*known, *MESSAGE_ADDRESSES)
    outbound = draw(st.booleans())
    at = draw(st.sampled_from(TIMES[1:]))
    return MessageIngested(
        provider=draw(st.sampled_from(["gmail", "outlook"])),
        mailbox_id="mbx_owner",
        mailbox_address=MAILBOX,
        connection_ids=("conn_0",),
        provider_message_id="msg-1",
        provider_thread_id="thr-1",
        internet_message_id="<msg-1@mail.example>",
        subject=draw(_SUBJECTS),
        from_=Address(email=MAILBOX) if outbound else _draw_addresses(draw, participants, 1, 1)[0],
        to=_draw_addresses(draw, participants, 1, 3),
        cc=_draw_addresses(draw, (*bccs, *bccs, *participants), 0, 2),
        bcc=_draw_addresses(draw, (*bccs, *participants), 0, 2) if outbound else (),
        direction="outbound" if outbound else "inbound",
        sent_by_owner=outbound,
        sent_at=at,
        received_at=at,
        body=MessageBody(text="Hello"),
        attachments=tuple(draw(_ATTACHMENT_LISTS)),
    )


@dataclass(frozen=True)
class World:
    message: MessageIngested
    facts: RoutingFacts

    def binding(self, connection_id: str | None) -> MailboxBinding:
        return next(b for b in self.facts.bindings if b.connection_id == connection_id)

    def subaccount(self, subaccount_id: str) -> SubaccountFacts:
        return self.facts.subaccounts[subaccount_id]

    def route(self) -> RoutingDecision:
        return route_message(self.message, self.facts)


@st.composite
def worlds(draw: st.DrawFn) -> World:
    facts = draw(routing_facts())
    return World(_draw_message(draw, facts), facts)


def _normalized(addresses: tuple[Address, ...]) -> set[str]:
    return {a.email.lower() for a in addresses}


def _from_thread(filing: Filing, subaccount: SubaccountFacts) -> bool:
    return subaccount.thread is not None and (filing.contact_id, filing.conversation_id) == (
        subaccount.thread.contact_id,
        subaccount.thread.conversation_id,
    )


def _outcomes(decision: RoutingDecision) -> Counter[Filing | Skip]:
    return Counter([*decision.filings, *decision.skips])


@settings(max_examples=200)
@given(worlds())
def test_tenant_isolation_only_assigned_contacts_held_threads_or_bcc_copies_file(world: World) -> None:
    """M1, G1, C1, P6: a filing needs the counterpart to be a contact assigned to the binding's user, a
    thread the subaccount already holds (G2), or the user's BCC address in copy creating the contact."""
    message = world.message
    counterparts = (
        _normalized(message.to + message.cc) if message.sent_by_owner else {message.from_.normalized}
    )
    for filing in world.route().filings:
        binding = world.binding(filing.connection_id)
        subaccount = world.subaccount(filing.subaccount_id)
        assert (filing.subaccount_id, filing.user_id) == (binding.subaccount_id, binding.user_id)
        if _from_thread(filing, subaccount):
            continue
        if filing.new_contact is not None:
            user = subaccount.user(binding.user_id)
            assert filing.rule == "P6"
            assert user is not None
            assert user.bcc_address in _normalized(message.cc + message.bcc)
            assert filing.new_contact.address in counterparts
            assert not subaccount.contacts_with(filing.new_contact.address)
            assert not subaccount.is_user_address(filing.new_contact.address)
            assert filing.contact_id == new_contact_id(filing.subaccount_id, filing.new_contact.address)
            continue
        contact = next(c for c in subaccount.contacts if c.contact_id == filing.contact_id)
        assert contact.assigned_user_id == binding.user_id
        assert contact.addresses & counterparts


@settings(max_examples=200)
@given(worlds())
def test_completeness_every_binding_yields_exactly_one_filing_or_skip(world: World) -> None:
    decision = world.route()

    outcomes: list[Filing | Skip] = [*decision.filings, *decision.skips]
    decided = Counter((o.connection_id, o.subaccount_id) for o in outcomes)
    assert decided == Counter((b.connection_id, b.subaccount_id) for b in world.facts.bindings)
    assert all(skip.detail for skip in decision.skips)


@settings(max_examples=200)
@given(worlds(), st.data())
def test_determinism_same_message_same_facts_any_binding_order(world: World, data: st.DataObject) -> None:
    """D2: a redelivery routes identically, whatever order the handler lists the bindings in."""
    reordered = data.draw(st.permutations(world.facts.bindings))
    redelivered = world.message.model_copy(update={"event_id": data.draw(st.uuids())})

    first = world.route()

    assert route_message(world.message, world.facts) == first
    assert _outcomes(route_message(redelivered, world.facts)) == _outcomes(first)
    shuffled = RoutingFacts(tuple(reordered), world.facts.subaccounts, world.facts.thread_owner)
    assert _outcomes(route_message(world.message, shuffled)) == _outcomes(first)


@settings(max_examples=200)
@given(worlds())
def test_conversation_is_the_contacts_own_unless_a_thread_link_gives_it(world: World) -> None:
    """D2: one conversation per subaccount and contact; only a held thread (G2, G3, P3) names another."""
    for filing in world.route().filings:
        if not _from_thread(filing, world.subaccount(filing.subaccount_id)):
            assert filing.conversation_id == conversation_id_for(filing.subaccount_id, filing.contact_id)


@settings(max_examples=200)
@given(worlds())
def test_nothing_files_outside_the_connection_window_or_the_owning_subaccount(world: World) -> None:
    """C4, C5, C7, M2, M3."""
    received = world.message.received_at
    for filing in world.route().filings:
        binding = world.binding(filing.connection_id)
        assert binding.bound_from <= received
        assert binding.bound_until is None or received < binding.bound_until
        assert world.facts.thread_owner in {None, filing.subaccount_id}


@settings(max_examples=200)
@given(worlds())
def test_mail_from_a_user_of_the_subaccount_is_never_filed_there(world: World) -> None:
    """P7, even inside a thread the subaccount holds."""
    if world.message.sent_by_owner:
        return
    for filing in world.route().filings:
        assert not world.subaccount(filing.subaccount_id).is_user_address(world.message.from_.normalized)


REFERENCE_TYPES = frozenset({"jpg", "jpeg", "png", "mp4", "mpeg", "zip", "rar", "pdf", "doc", "docx", "txt"})


@settings(max_examples=200)
@given(worlds())
def test_outlook_filings_respect_the_attachment_policy(world: World) -> None:
    """O3: no filed Outlook message carries a non-inline attachment over 3 MB or of an unlisted type."""
    if world.message.provider != "outlook" or not world.route().filings:
        return
    for attachment in world.message.attachments:
        _, dot, extension = attachment.filename.rpartition(".")
        assert attachment.is_inline or (
            attachment.size_bytes <= 3 * 1024 * 1024 and dot and extension.lower() in REFERENCE_TYPES
        )


@pytest.mark.parametrize(
    ("rule", "through_thread", "creates_contact"),
    [
        pytest.param("G3", False, False, id="G3-assigned-contact"),
        pytest.param("G2", True, False, id="G2-held-thread"),
        pytest.param("O2", True, False, id="O2-held-outlook-thread"),
        pytest.param("P5", False, False, id="P5-gmail-forward"),
        pytest.param("P6", False, False, id="P6-existing-contact"),
        pytest.param("P6", False, True, id="P6-new-contact"),
    ],
)
def test_generated_worlds_reach_every_filing_path(
    rule: str, through_thread: bool, creates_contact: bool
) -> None:
    """The properties above are vacuous unless the generator produces filings by each rule."""

    def files_that_way(world: World) -> bool:
        return any(
            f.rule == rule
            and _from_thread(f, world.subaccount(f.subaccount_id)) == through_thread
            and (f.new_contact is not None) == creates_contact
            for f in world.route().filings
        )

    found = find(
        worlds(),
        files_that_way,
        settings=settings(max_examples=3_000, database=None, phases=[Phase.generate]),
    )

    assert files_that_way(found)
