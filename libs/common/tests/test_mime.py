"""The header-class-keeping policies build and parse exactly what the standard ones do."""

from __future__ import annotations

import re
from email import policy
from email.headerregistry import AddressHeader, BaseHeader, HeaderRegistry, UnstructuredHeader
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import EmailPolicy
from typing import cast

from mailsync.common import mime


def build(with_policy: EmailPolicy[EmailMessage]) -> bytes:
    message = EmailMessage(policy=with_policy)
    message["From"] = "Ada Lovelace <ada@acme.example>"
    message["To"] = "Grace Hopper <grace@navy.example>, bob@acme.example"
    message["Subject"] = "Re: Angebot für Ihre Bestellung Nr. 12, eine lange Betreffzeile, " + "gefaltet " * 6
    message["Message-ID"] = "<1a2b@acme.example>"
    message["References"] = "<a@x.example> <b@y.example>"
    message.set_content("Grüße,\nAda\n", subtype="plain", cte="quoted-printable")
    message.add_alternative("<p>Grüße, Ada</p>", subtype="html")
    message.add_attachment(b"%PDF-1.7", maintype="application", subtype="pdf", filename="Angebot.pdf")
    return message.as_bytes(policy=with_policy)


def test_messages_built_are_byte_for_byte_the_standard_ones() -> None:
    built = build(mime.SMTP)
    standard = build(policy.SMTP)
    assert standard.count(b"boundary=") == 2  # random in both: compared once made equal
    assert _without_boundaries(built) == _without_boundaries(standard)


def test_messages_parsed_give_the_standard_headers() -> None:
    raw = build(policy.SMTP)
    ours = BytesParser(policy=mime.DEFAULT).parsebytes(raw)
    theirs = BytesParser(policy=policy.default).parsebytes(raw)
    assert [(k, str(v)) for k, v in ours.items()] == [(k, str(v)) for k, v in theirs.items()]
    assert ours["To"].addresses == theirs["To"].addresses


def test_a_header_type_gets_its_class_once_and_a_new_mapping_is_followed() -> None:
    registry = cast(HeaderRegistry, mime.SMTP.header_factory)
    standard = cast(HeaderRegistry, policy.SMTP.header_factory)
    assert registry["Subject"] is registry["subject"]
    assert registry["X-Anything"] is registry["X-Something-Else"]  # any name: one class per type
    assert registry["To"] is registry["Cc"]
    assert AddressHeader in registry["to"].__mro__
    assert standard["To"] is not standard["To"]  # the standard registry makes a class every time

    local = type(registry)()
    first = local["X-Mailsync-Request-Id"]
    assert UnstructuredHeader in first.__mro__
    # The standard map holds AddressHeader too: a mixin, which typeshed does not count as a BaseHeader.
    local.map_to_type("x-mailsync-request-id", cast(type[BaseHeader], AddressHeader))
    assert AddressHeader in local["X-Mailsync-Request-Id"].__mro__


def _without_boundaries(raw: bytes) -> bytes:
    boundaries = dict.fromkeys(re.findall(rb'boundary="([^"]+)"', raw))
    for n, boundary in enumerate(boundaries):
        raw = raw.replace(boundary, f"BOUNDARY{n}".encode())
    return raw
