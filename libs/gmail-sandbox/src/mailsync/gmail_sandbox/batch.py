"""The batch endpoint (``POST /batch`` and ``/batch/gmail/v1``): many Gmail calls in one HTTP request.

Google's format (https://developers.google.com/workspace/gmail/api/guides/batch): a ``multipart/mixed`` body
whose parts are ``application/http`` requests (request line, headers including each call's own
``Authorization``, body); the answer is ``multipart/mixed`` with one ``application/http`` response per part,
each with ``Content-ID: <response-{id}>``. Gmail allows at most 100 calls per batch (and advises 50); each
inner call counts against the quota like a separate request, so a batch costs the sum of its parts.

The sandbox executes the parts one after another by calling itself over loopback, so every inner call passes
through the same fault injection, authentication, quota and handlers as a direct call.
"""

from __future__ import annotations

import secrets
from email.parser import Parser
from http import HTTPStatus

import aiohttp
from aiohttp import web

from mailsync.gmail_sandbox.errors import bad_request
from mailsync.gmail_sandbox.gmail_api import split_multipart

MAX_CALLS_PER_BATCH = 100


class BatchEndpoint:
    """Serves batch requests; owns the loopback HTTP session (closed with :meth:`close`)."""

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None

    def routes(self) -> list[web.RouteDef]:
        """The batch routes (the discovery document's ``batchPath`` and Gmail's documented path)."""
        return [web.post("/batch", self.handle), web.post("/batch/gmail/v1", self.handle)]

    async def handle(self, request: web.Request) -> web.Response:
        """Run every part and answer ``multipart/mixed``.

        Raises:
            GoogleApiError: 400 for a body that is not multipart or has more than 100 parts.
        """
        parts = split_multipart(request.headers.get("Content-Type", ""), await request.read())
        if not parts:
            raise bad_request("Batch request has no parts")
        if len(parts) > MAX_CALLS_PER_BATCH:
            raise bad_request(f"Too many requests in batch, the limit is {MAX_CALLS_PER_BATCH}.")
        if self._session is None:
            self._session = aiohttp.ClientSession()
        origin = str(request.url.origin())
        boundary = "batch_" + secrets.token_hex(12)
        chunks: list[bytes] = []
        for headers, content in parts:
            content_id = headers.get("Content-ID", "")
            answer = await self._run_one(origin, content.decode("utf-8", errors="replace"))
            response_id = f"<response-{content_id.strip('<>')}>" if content_id else ""
            chunks.append(
                f"--{boundary}\r\nContent-Type: application/http\r\n".encode()
                + (f"Content-ID: {response_id}\r\n".encode() if response_id else b"")
                + b"\r\n"
                + answer
                + b"\r\n"
            )
        body = b"".join(chunks) + f"--{boundary}--\r\n".encode()
        return web.Response(body=body, headers={"Content-Type": f"multipart/mixed; boundary={boundary}"})

    async def _run_one(self, origin: str, serialized: str) -> bytes:
        request_line, _, rest = serialized.lstrip("\r\n").partition("\n")
        method, _, remainder = request_line.strip().partition(" ")
        path = remainder.rsplit(" ", 1)[0] if remainder.endswith(("HTTP/1.1", "HTTP/1.0")) else remainder
        inner = Parser().parsestr(rest)
        headers = {k: v for k, v in inner.items() if k.lower() not in {"host", "content-length"}}
        payload = inner.get_payload()
        data = payload.encode() if isinstance(payload, str) and payload else None
        assert self._session is not None  # noqa: S101 - created by handle()
        async with self._session.request(method, origin + path, headers=headers, data=data) as response:
            body = await response.read()
            status = response.status
            content_type = response.headers.get("Content-Type", "application/json; charset=UTF-8")
        reason = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else ""
        head = f"HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\n"
        head += f"Content-Length: {len(body)}\r\n\r\n"
        return head.encode() + body

    async def close(self) -> None:
        """Close the loopback session."""
        if self._session is not None:
            await self._session.close()
            self._session = None
