"""Upload sessions for large message attachments (``concepts/outlook-large-attachments.md``).

* ``createUploadSession`` takes ``{"AttachmentItem": {"attachmentType": "file", "name", "size"}}`` and is only
  for files of 3 MB up to 150 MB: a smaller size gets 400
  ``ErrorAttachmentSizeShouldNotBeLessThanMinimumSize``.
  It answers 201 with ``uploadUrl``, ``expirationDateTime`` and ``nextExpectedRanges: ["0-"]``.
* The upload URL is pre-authenticated: PUTs carry no ``Authorization`` header, a ``Content-Range:
  bytes {start}-{end}/{total}`` and the bytes. Bytes must arrive in order; each accepted chunk answers 200
  with
  ``nextExpectedRanges: ["{next start}"]`` (a single start offset for Outlook), and the last one answers 201
  with
  an empty body and a ``Location`` header naming the new attachment. DELETE on the URL cancels (204).
* Microsoft recommends chunks under 4 MB; the sandbox accepts larger ones.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import secrets
from collections.abc import Callable

from mailsync.graph_sandbox.errors import GraphError, bad_request

MIN_SESSION_BYTES = 3 * 1024 * 1024
MAX_SESSION_BYTES = 150 * 1024 * 1024
SESSION_LIFETIME = dt.timedelta(hours=1)
_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+)$")


@dataclasses.dataclass
class UploadSession:
    """An upload in progress."""

    token: str
    mailbox_id: str
    message_id: str
    name: str
    content_type: str
    size: int
    expiration: dt.datetime
    received: bytearray = dataclasses.field(default_factory=bytearray)

    @property
    def next_expected(self) -> str:
        """The next start offset, as ``nextExpectedRanges`` writes it."""
        return str(len(self.received))


@dataclasses.dataclass(frozen=True)
class ChunkResult:
    """After a PUT: either still expecting bytes (``complete`` False) or done."""

    session: UploadSession
    complete: bool


class UploadSessions:
    """Open upload sessions keyed by the secret token in their URL."""

    def __init__(self, clock: Callable[[], dt.datetime]) -> None:
        self._clock = clock
        self._sessions: dict[str, UploadSession] = {}

    def create(self, *, mailbox_id: str, message_id: str, item: object) -> UploadSession:
        """Open a session for the ``AttachmentItem`` ``item``; raises Graph's 400 for a bad or wrong size."""
        if not isinstance(item, dict):
            raise bad_request("'AttachmentItem' is required.", "ErrorInvalidRequest")
        if item.get("attachmentType", "file") != "file":
            raise bad_request("Only attachmentType 'file' is supported.", "ErrorInvalidRequest")
        name, size = item.get("name"), item.get("size")
        if not isinstance(name, str) or not isinstance(size, int):
            raise bad_request("'name' and 'size' are required.", "ErrorInvalidRequest")
        if size < MIN_SESSION_BYTES:
            raise bad_request(
                f"Attachment size {size} should not be less than the minimum size {MIN_SESSION_BYTES}.",
                "ErrorAttachmentSizeShouldNotBeLessThanMinimumSize",
            )
        if size > MAX_SESSION_BYTES:
            raise bad_request(
                f"Attachment size {size} exceeds the maximum size {MAX_SESSION_BYTES}.",
                "ErrorAttachmentSizeShouldNotBeGreaterThanMaximumSize",
            )
        content_type = item.get("contentType")
        session = UploadSession(
            token=secrets.token_urlsafe(32),
            mailbox_id=mailbox_id,
            message_id=message_id,
            name=name,
            content_type=content_type if isinstance(content_type, str) else "application/octet-stream",
            size=size,
            expiration=self._clock() + SESSION_LIFETIME,
        )
        self._sessions[session.token] = session
        return session

    def get(self, token: str) -> UploadSession:
        """A live session; 404 for an unknown, finished, cancelled or expired one."""
        session = self._sessions.get(token)
        if session is None or session.expiration <= self._clock():
            self._sessions.pop(token, None)
            raise GraphError(404, "ErrorItemNotFound", "The upload session was not found or has expired.")
        return session

    def put(self, token: str, content_range: str | None, data: bytes) -> ChunkResult:
        """Accept one chunk. Out-of-order, overlapping or inconsistent ranges are a 400 (``InvalidRange``)."""
        session = self.get(token)
        found = _RANGE.match(content_range or "")
        if found is None:
            raise bad_request("The Content-Range header is missing or malformed.", "InvalidContentRange")
        start, end, total = (int(g) for g in found.groups())
        if total != session.size:
            raise bad_request(
                f"The total size {total} differs from the session's {session.size}.", "InvalidRange"
            )
        if start != len(session.received) or end < start or end >= total or end - start + 1 != len(data):
            raise bad_request(
                f"The range {start}-{end} is not the expected one; next expected is {session.next_expected}.",
                "InvalidRange",
            )
        session.received.extend(data)
        if len(session.received) == session.size:
            del self._sessions[token]
            return ChunkResult(session, complete=True)
        return ChunkResult(session, complete=False)

    def cancel(self, token: str) -> None:
        """Cancel a session (404 when unknown)."""
        self.get(token)
        del self._sessions[token]

    def clear(self) -> None:
        """Drop every session."""
        self._sessions.clear()
