"""The stored bodies and attachments a command references (`BlobRef`, store `gridfs`), in the sender's bucket.

The sender uses the platform's one content-addressed store (`mailsync.common.blobs.BlobStore`): other
platform teams upload attachment content through `POST /v1/attachments` (`mailsync.sender.api`), and a send
reads it back verified against the reference's `size_bytes` and `sha256`. Anything else (unknown store,
missing file, mismatch) is `BlobUnavailableError`, which refuses the command with `attachment_unavailable`.
"""

from __future__ import annotations

import mimetypes

from mailsync.common.blobs import GRIDFS_STORE, BlobStore, BlobUnavailableError
from mailsync.common.contracts import BlobRef

__all__ = ["GRIDFS_STORE", "BlobUnavailableError", "GridFsBlobStore"]


class GridFsBlobStore(BlobStore):
    """The sender's bucket; `write` is how producers in-process (and tests) store content."""

    async def write(self, data: bytes, filename: str) -> BlobRef:
        """Store `data` (media type guessed from `filename`) and return its reference."""
        content_type = mimetypes.guess_type(filename)[0] or "application/octet-stream"
        return await self.put(data, content_type)
