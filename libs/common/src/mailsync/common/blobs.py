"""Large bodies and attachment content in a GridFS bucket, stored once by content.

The file id is the SHA-256 of the content, so the same attachment fetched from many mailboxes or many times
is stored once; a ``BlobRef(store="gridfs", id=<sha256>)`` points at it. A write interrupted after some
chunks (no files document yet) is cleaned up and redone by the next attempt.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from gridfs import AsyncGridFSBucket
from pymongo.errors import DuplicateKeyError

from mailsync.common.contracts import BlobRef

if TYPE_CHECKING:
    from pymongo.asynchronous.database import AsyncDatabase

    from mailsync.common.mongo import Document


class BlobStore:
    """Content-addressed GridFS storage."""

    def __init__(self, database: AsyncDatabase[Document], bucket: str) -> None:
        self._bucket = AsyncGridFSBucket(database, bucket_name=bucket)
        self._files = database[f"{bucket}.files"]
        self._chunks = database[f"{bucket}.chunks"]

    async def put(self, content: bytes, content_type: str) -> BlobRef:
        """Store ``content`` unless already stored; idempotent."""
        digest = hashlib.sha256(content).hexdigest()
        if await self._files.find_one({"_id": digest}, {"_id": 1}) is None:
            try:
                await self._bucket.upload_from_stream_with_id(
                    digest, digest, content, metadata={"content_type": content_type}
                )
            except DuplicateKeyError:
                if await self._files.find_one({"_id": digest}, {"_id": 1}) is None:
                    await self._chunks.delete_many({"files_id": digest})
                    await self._bucket.upload_from_stream_with_id(
                        digest, digest, content, metadata={"content_type": content_type}
                    )
        return BlobRef(store="gridfs", id=digest, size_bytes=len(content), sha256=digest)

    async def get(self, blob_id: str) -> bytes:
        """The content of a stored blob."""
        stream = await self._bucket.open_download_stream(blob_id)
        return await stream.read()
