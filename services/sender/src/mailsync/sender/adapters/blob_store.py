"""MongoDB GridFS: the stored bodies and attachments a command references (`BlobRef`, store `gridfs`).

A blob's `id` is the GridFS file id: an ObjectId in hex when it parses as one, else the string itself. The
content read must match the reference's `size_bytes` and `sha256`; anything else (unknown store, missing
file, mismatch) is `BlobUnavailableError`, which refuses the command with `attachment_unavailable`.
"""

from __future__ import annotations

import hashlib

from bson import ObjectId
from bson.errors import InvalidId
from gridfs import AsyncGridFSBucket
from gridfs.errors import NoFile
from pymongo.asynchronous.database import AsyncDatabase

from mailsync.common.contracts import BlobRef
from mailsync.common.mongo import Document

GRIDFS_STORE = "gridfs"


class BlobUnavailableError(Exception):
    """The referenced content cannot be read, or is not what the reference describes."""


class GridFsBlobStore:
    """Reads blobs from one GridFS bucket."""

    def __init__(self, database: AsyncDatabase[Document], bucket_name: str) -> None:
        self._bucket = AsyncGridFSBucket(database, bucket_name=bucket_name)

    async def read(self, ref: BlobRef) -> bytes:
        """The content `ref` points to, verified against its size and digest."""
        if ref.store != GRIDFS_STORE:
            raise BlobUnavailableError(f"blob store {ref.store!r} is not reachable from the sender")
        try:
            file_id: ObjectId | str = ObjectId(ref.id)
        except InvalidId:
            file_id = ref.id
        try:
            stream = await self._bucket.open_download_stream(file_id)
        except NoFile:
            raise BlobUnavailableError(f"blob {ref.id} does not exist in {ref.store}") from None
        data = await stream.read()
        if len(data) != ref.size_bytes or hashlib.sha256(data).hexdigest() != ref.sha256:
            raise BlobUnavailableError(f"blob {ref.id} does not match its size or sha256")
        return data

    async def write(self, data: bytes, filename: str) -> BlobRef:
        """Store `data` and return its reference (used by producers and tests)."""
        file_id = await self._bucket.upload_from_stream(filename, data)
        return BlobRef(
            store=GRIDFS_STORE,
            id=str(file_id),
            size_bytes=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
        )
