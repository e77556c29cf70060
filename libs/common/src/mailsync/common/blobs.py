"""Large bodies and attachment content in a GridFS bucket, stored once by content.

Every service that stores or reads content (the ingest services' fetched attachments and large bodies, the
sender's uploaded attachments and the content its commands reference) uses this one store. The file id is
the SHA-256 of the content, so the same attachment fetched from many mailboxes, or uploaded many times, is
stored once; a ``BlobRef(store="gridfs", id=<sha256>)`` points at it.

Writes are in the GridFS format (readable by any GridFS client) but done here, so that writers of the same
content never disturb each other: the chunks of a content are the same whoever cuts them, a chunk another
writer already stored is left as it is, and the files document, which makes the blob visible, comes last. A
write interrupted after some chunks is completed by the next one; two at once both succeed.

Uploads arrive as a stream whose digest is only known at its end, while the file id must be known before the
first chunk is written: the stream is spooled (in memory up to ``SPOOL_MEMORY_BYTES``, on disk beyond) while
it is hashed and counted, then copied into GridFS one chunk at a time.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import re
import tempfile
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, TYPE_CHECKING

from bson import Binary, Int64
from gridfs import AsyncGridFSBucket
from gridfs.errors import NoFile
from pymongo.errors import DuplicateKeyError

from mailsync.common.contracts import BlobRef

if TYPE_CHECKING:
    from gridfs.asynchronous.grid_file import AsyncGridOut
    from pymongo.asynchronous.database import AsyncDatabase

    from mailsync.common.mongo import Document

GRIDFS_STORE = "gridfs"
SPOOL_MEMORY_BYTES = 1024 * 1024
"""Most of an upload held in memory while it is hashed; the rest waits in a temporary file."""

CHUNK_BYTES = 255 * 1024
"""GridFS's default chunk size. Fixed, so every writer of a content cuts it into the same chunks."""

_BLOB_ID = re.compile(r"^[0-9a-f]{64}$")


class BlobUnavailableError(Exception):
    """The referenced content cannot be read, or is not what the reference describes."""


class BlobTooLargeError(Exception):
    """An upload exceeded the size it may have."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(f"the content exceeds {max_bytes} bytes")
        self.max_bytes = max_bytes


class EmptyBlobError(Exception):
    """An upload had no content."""


@dataclass(frozen=True)
class StoredBlob:
    """A stored blob opened for reading: its reference, media type and content in GridFS chunks."""

    ref: BlobRef
    content_type: str | None
    _file: AsyncGridOut

    async def chunks(self) -> AsyncIterator[bytes]:
        """The content, one GridFS chunk at a time."""
        while chunk := await self._file.readchunk():
            yield chunk


class BlobStore:
    """Content-addressed GridFS storage."""

    def __init__(self, database: AsyncDatabase[Document], bucket: str) -> None:
        self._bucket = AsyncGridFSBucket(database, bucket_name=bucket)
        self._files = database[f"{bucket}.files"]
        self._chunks = database[f"{bucket}.chunks"]
        self._indexed = False

    async def put(self, content: bytes, content_type: str) -> BlobRef:
        """Store ``content`` unless already stored; idempotent."""
        digest = hashlib.sha256(content).hexdigest()
        await self._store(digest, io.BytesIO(content), len(content), content_type)
        return BlobRef(store=GRIDFS_STORE, id=digest, size_bytes=len(content), sha256=digest)

    async def put_stream(self, chunks: AsyncIterable[bytes], content_type: str, *, max_bytes: int) -> BlobRef:
        """Store streamed content unless already stored; idempotent.

        Raises `BlobTooLargeError` as soon as more than ``max_bytes`` arrived (nothing is stored) and
        `EmptyBlobError` when nothing did.
        """
        digest = hashlib.sha256()
        size = 0
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY_BYTES) as spool:
            async for chunk in chunks:
                size += len(chunk)
                if size > max_bytes:
                    raise BlobTooLargeError(max_bytes)
                digest.update(chunk)
                spool.write(chunk)
            if size == 0:
                raise EmptyBlobError("the content is empty")
            blob_id = digest.hexdigest()
            spool.seek(0)
            await self._store(blob_id, spool, size, content_type)
        return BlobRef(store=GRIDFS_STORE, id=blob_id, size_bytes=size, sha256=blob_id)

    async def open(self, blob_id: str) -> StoredBlob | None:
        """The stored blob ``blob_id`` ready to stream, or None when there is none."""
        if not _BLOB_ID.match(blob_id):
            return None
        try:
            file = await self._bucket.open_download_stream(blob_id)
        except NoFile:
            return None
        metadata = file.metadata or {}
        content_type = metadata.get("content_type")
        ref = BlobRef(store=GRIDFS_STORE, id=blob_id, size_bytes=file.length, sha256=blob_id)
        return StoredBlob(ref, content_type if isinstance(content_type, str) else None, file)

    async def get(self, blob_id: str) -> bytes:
        """The content of a stored blob; `BlobUnavailableError` when there is none."""
        try:
            stream = await self._bucket.open_download_stream(blob_id)
        except NoFile:
            raise BlobUnavailableError(f"blob {blob_id} does not exist") from None
        return await stream.read()

    async def read(self, ref: BlobRef) -> bytes:
        """The content ``ref`` points to, verified against its size and digest (`BlobUnavailableError`)."""
        if ref.store != GRIDFS_STORE:
            raise BlobUnavailableError(f"blob store {ref.store!r} is not reachable")
        data = await self.get(ref.id)
        if len(data) != ref.size_bytes or hashlib.sha256(data).hexdigest() != ref.sha256:
            raise BlobUnavailableError(f"blob {ref.id} does not match its size or sha256")
        return data

    async def _store(self, blob_id: str, source: IO[bytes], length: int, content_type: str) -> None:
        if await self._exists(blob_id):
            return
        await self._ensure_chunk_index()
        n = 0
        while chunk := source.read(CHUNK_BYTES):
            with contextlib.suppress(DuplicateKeyError):
                await self._chunks.insert_one({"files_id": blob_id, "n": n, "data": Binary(chunk)})
            n += 1
        with contextlib.suppress(DuplicateKeyError):
            await self._files.insert_one(
                {
                    "_id": blob_id,
                    "length": Int64(length),
                    "chunkSize": CHUNK_BYTES,
                    "uploadDate": datetime.now(UTC),
                    "filename": blob_id,
                    "metadata": {"content_type": content_type},
                }
            )

    async def _exists(self, blob_id: str) -> bool:
        return await self._files.find_one({"_id": blob_id}, {"_id": 1}) is not None

    async def _ensure_chunk_index(self) -> None:
        if not self._indexed:
            await self._chunks.create_index([("files_id", 1), ("n", 1)], unique=True)
            self._indexed = True
