"""Content in and out of a `BlobStore` over HTTP, the same way in every service that has a store.

Content is referenced across the platform by `BlobRef`, but a `BlobRef` is only useful with the bytes behind
it. The sender takes attachment content from other platform teams (`POST /v1/attachments`, answering the
`BlobRef` a `SendEmail` carries); the ingest services serve the content of the `BlobRef`s the router's read
API hands out (`GET /v1/blobs/{blob_id}`). Both stream: an upload is spooled while it is hashed (see
`mailsync.common.blobs`) and a download is written one GridFS chunk at a time.

Both take the service's CRM-facing bearer token; without one they are open (local use only), like the other
public endpoints. Errors are `{"error": <code>, "message": ...}` (`mailsync.common.http_api`).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from aiohttp import web

from mailsync.common.blobs import BlobTooLargeError, EmptyBlobError
from mailsync.common.http_api import bearer_matches, error_response

if TYPE_CHECKING:
    from mailsync.common.blobs import BlobStore

logger = logging.getLogger(__name__)

UPLOAD_PATH = "/v1/attachments"
DOWNLOAD_PATH = "/v1/blobs/{blob_id}"
DEFAULT_CONTENT_TYPE = "application/octet-stream"
_READ_BYTES = 64 * 1024
_MAX_CONTENT_TYPE = 255
_MAX_FILENAME_LOGGED = 255
_IMMUTABLE = "private, max-age=31536000, immutable"


def _denied(request: web.Request, api_token: str | None) -> web.Response | None:
    if api_token is None or bearer_matches(request, api_token):
        return None
    return error_response(401, "unauthorized", "a valid bearer token is required")


def _etag(sha256: str) -> str:
    return f'"{sha256}"'


def add_upload_route(
    app: web.Application, store: BlobStore, *, api_token: str | None, max_bytes: int
) -> None:
    """Mount ``POST /v1/attachments``: the raw body is stored and its `BlobRef` answered (201).

    The ``Content-Type`` header is stored as the content's media type; the ``filename`` query parameter is
    only logged. 400 ``empty_content`` or ``invalid_content_type``, 413 ``content_too_large`` (over
    ``max_bytes``, refused from ``Content-Length`` before reading when the client sends one).
    """

    async def upload(request: web.Request) -> web.Response:
        if denied := _denied(request, api_token):
            return denied
        content_type = request.headers.get("Content-Type", DEFAULT_CONTENT_TYPE).strip()
        if not _valid_content_type(content_type):
            return error_response(
                400, "invalid_content_type", "Content-Type must be a media type such as application/pdf"
            )
        declared = request.content_length
        if declared is not None and declared > max_bytes:
            return _too_large(max_bytes)
        try:
            ref = await store.put_stream(
                request.content.iter_chunked(_READ_BYTES), content_type, max_bytes=max_bytes
            )
        except BlobTooLargeError:
            return _too_large(max_bytes)
        except EmptyBlobError:
            return error_response(400, "empty_content", "the body (the content) is empty")
        logger.info(
            "attachment stored",
            extra={
                "blob_id": ref.id,
                "size_bytes": ref.size_bytes,
                "content_type": content_type,
                "upload_filename": request.query.get("filename", "")[:_MAX_FILENAME_LOGGED],
            },
        )
        return web.json_response(ref.model_dump(mode="json"), status=201, headers={"ETag": _etag(ref.sha256)})

    app.router.add_post(UPLOAD_PATH, upload)


def add_download_route(app: web.Application, store: BlobStore, *, api_token: str | None) -> None:
    """Mount ``GET /v1/blobs/{blob_id}``: the stored content, streamed.

    Answers with ``Content-Length``, ``ETag`` (the quoted sha256, which is also the id), the stored media type
    (``application/octet-stream`` when none was stored) and, the content being immutable, a long private
    cache lifetime; 304 when ``If-None-Match`` names it, 404 ``blob_not_found`` for an unknown id.
    """

    async def download(request: web.Request) -> web.StreamResponse:
        if denied := _denied(request, api_token):
            return denied
        blob = await store.open(request.match_info["blob_id"])
        if blob is None:
            return error_response(404, "blob_not_found", "no stored content has this id")
        etag = _etag(blob.ref.sha256)
        headers = {"ETag": etag, "Cache-Control": _IMMUTABLE}
        if _tags(request.headers.get("If-None-Match", "")) & {etag, "*"}:
            return web.Response(status=304, headers=headers)
        headers["Content-Type"] = blob.content_type or DEFAULT_CONTENT_TYPE
        response = web.StreamResponse(headers=headers)
        response.content_length = blob.ref.size_bytes
        await response.prepare(request)
        if request.method != "HEAD":
            async for chunk in blob.chunks():
                await response.write(chunk)
        await response.write_eof()
        return response

    app.router.add_get(DOWNLOAD_PATH, download)


def _too_large(max_bytes: int) -> web.Response:
    return error_response(
        413, "content_too_large", f"the content exceeds {max_bytes} bytes", max_bytes=max_bytes
    )


def _valid_content_type(value: str) -> bool:
    kind, slash, rest = value.partition(";")[0].partition("/")
    return (
        bool(slash and kind.strip() and rest.strip())
        and len(value) <= _MAX_CONTENT_TYPE
        and value.isprintable()
    )


def _tags(header: str) -> set[str]:
    return {tag.strip().removeprefix("W/") for tag in header.split(",")}
