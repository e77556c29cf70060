"""A connection's mailbox API calls with token renewal: one fresh token is asked for when the provider
refuses the current one (401); a second refusal means the grant is gone (`ConnectionNeedsReauthError`, C6).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from mailsync.sender.adapters.access_tokens import AccessGrant, AccessTokens, ConnectionNeedsReauthError
from mailsync.sender.adapters.delivery_errors import AccessTokenRejectedError, RetryableDeliveryError
from mailsync.sender.adapters.gmail import GmailClient
from mailsync.sender.adapters.graph import GraphClient, GraphMessage
from mailsync.sender.domain import ProviderReceipt

T = TypeVar("T")


class GmailSession:
    """Gmail calls for one connection, renewing the access token once when Gmail refuses it."""

    def __init__(self, client: GmailClient, tokens: AccessTokens, grant: AccessGrant) -> None:
        self._client = client
        self._tokens = tokens
        self._grant = grant

    async def send(self, raw: bytes, thread_id: str | None) -> ProviderReceipt:
        return await self._authorized(lambda token: self._client.send(token, raw, thread_id))

    async def find(self, internet_message_id: str) -> ProviderReceipt | None:
        return await self._authorized(lambda token: self._client.find(token, internet_message_id))

    async def _authorized(self, call: Callable[[str], Awaitable[T]]) -> T:
        try:
            return await call(self._grant.access_token)
        except AccessTokenRejectedError:
            self._tokens.forget(self._grant.connection_id)
            grant = self._grant
            self._grant = await self._tokens.grant(grant.connection_id, grant.provider, grant.mailbox_id)
            try:
                return await call(self._grant.access_token)
            except AccessTokenRejectedError as error:
                raise ConnectionNeedsReauthError(self._grant.connection_id) from error


class GraphSession:
    """Graph calls for one connection, renewing the access token once when Graph refuses it."""

    def __init__(self, client: GraphClient, tokens: AccessTokens, grant: AccessGrant) -> None:
        self._client = client
        self._tokens = tokens
        self._grant = grant

    async def create_draft(self, message: dict[str, Any]) -> GraphMessage:
        return await self._authorized(lambda token: self._client.create_draft(token, message))

    async def create_reply(self, parent_id: str, message: dict[str, Any]) -> GraphMessage:
        return await self._authorized(lambda token: self._client.create_reply(token, parent_id, message))

    async def attach(self, draft_id: str, name: str, content_type: str, data: bytes) -> None:
        await self._authorized(lambda token: self._client.attach(token, draft_id, name, content_type, data))

    async def send_and_find(self, draft: GraphMessage) -> GraphMessage:
        """Send the draft and return its sent copy (a copy not found yet leaves the outcome unknown)."""
        await self._authorized(lambda token: self._client.send_draft(token, draft.id))
        sent = await self.find(draft.internet_message_id)
        if sent is None:
            raise RetryableDeliveryError("the sent copy is not in the mailbox yet", outcome_unknown=True)
        return sent

    async def find(self, internet_message_id: str) -> GraphMessage | None:
        return await self._authorized(lambda token: self._client.find(token, internet_message_id))

    async def draft(self, internet_message_id: str) -> GraphMessage | None:
        return await self._authorized(lambda token: self._client.draft(token, internet_message_id))

    async def last_in_conversation(self, conversation_id: str) -> GraphMessage | None:
        return await self._authorized(lambda token: self._client.last_in_conversation(token, conversation_id))

    async def _authorized(self, call: Callable[[str], Awaitable[T]]) -> T:
        try:
            return await call(self._grant.access_token)
        except AccessTokenRejectedError:
            self._tokens.forget(self._grant.connection_id)
            grant = self._grant
            self._grant = await self._tokens.grant(grant.connection_id, grant.provider, grant.mailbox_id)
            try:
                return await call(self._grant.access_token)
            except AccessTokenRejectedError as error:
                raise ConnectionNeedsReauthError(self._grant.connection_id) from error
