"""msgraph-sdk's own request builders (URL templates, serialization, error mapping) against the sandbox."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from kiota_abstractions.authentication.access_token_provider import AccessTokenProvider
from kiota_abstractions.authentication.allowed_hosts_validator import AllowedHostsValidator
from kiota_abstractions.authentication.base_bearer_token_authentication_provider import (
    BaseBearerTokenAuthenticationProvider,
)
from msgraph.generated.models.body_type import BodyType
from msgraph.generated.models.email_address import EmailAddress
from msgraph.generated.models.item_body import ItemBody
from msgraph.generated.models.message import Message
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.models.recipient import Recipient
from msgraph.generated.users.item.messages.item.reply.reply_post_request_body import ReplyPostRequestBody
from msgraph.generated.users.item.send_mail.send_mail_post_request_body import SendMailPostRequestBody
from msgraph.graph_request_adapter import GraphRequestAdapter
from msgraph.graph_service_client import GraphServiceClient

from mailsync.graph_sandbox import GraphSandboxAdmin, SandboxServer

ALICE = "alice@contoso.example"
# the generated request builders warn about their own deprecated configuration classes
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


class _StaticToken(AccessTokenProvider):
    def __init__(self, token: str) -> None:
        self._token = token

    async def get_authorization_token(
        self,
        uri: str,  # noqa: ARG002 - AccessTokenProvider's signature
        additional_authentication_context: Any = None,  # noqa: ARG002
    ) -> str:
        return self._token

    def get_allowed_hosts_validator(self) -> AllowedHostsValidator:
        return AllowedHostsValidator([])


@pytest.fixture
async def sdk(
    server: SandboxServer, admin: GraphSandboxAdmin
) -> AsyncIterator[tuple[GraphServiceClient, str]]:
    mailbox = await admin.create_mailbox(ALICE)
    token = (await admin.mint_tokens(ALICE, ["Mail.ReadWrite", "Mail.Send"]))["access_token"]
    context = ssl.create_default_context(cafile=server.ca_file)
    async with httpx.AsyncClient(verify=context) as http:
        adapter = GraphRequestAdapter(BaseBearerTokenAuthenticationProvider(_StaticToken(token)), client=http)
        adapter.base_url = f"{server.base_url}/v1.0"
        yield GraphServiceClient(request_adapter=adapter), mailbox["id"]


async def test_sdk_send_list_reply_and_delta(
    sdk: tuple[GraphServiceClient, str], admin: GraphSandboxAdmin
) -> None:
    client, user_id = sdk
    user = client.users.by_user_id(user_id)
    await user.send_mail.post(
        SendMailPostRequestBody(
            message=Message(
                subject="From the SDK",
                body=ItemBody(content_type=BodyType.Text, content="hi"),
                to_recipients=[Recipient(email_address=EmailAddress(address="c@fabrikam.example"))],
            ),
            save_to_sent_items=True,
        )
    )
    sent = await user.mail_folders.by_mail_folder_id("sentitems").messages.get()
    assert sent is not None
    assert sent.value is not None
    assert [m.subject for m in sent.value] == ["From the SDK"]

    inbound = await admin.deliver_inbound(ALICE, sender="c@fabrikam.example", subject="Question")
    await user.messages.by_message_id(inbound["id"]).reply.post(ReplyPostRequestBody(comment="Answer"))
    replies = await user.mail_folders.by_mail_folder_id("sentitems").messages.get()
    assert replies is not None
    assert replies.value is not None
    assert replies.value[0].conversation_id == inbound["conversationId"]

    inbox = user.mail_folders.by_mail_folder_id("inbox")
    page = await inbox.messages.delta.get()  # the SDK calls .../messages/delta()
    assert page is not None
    assert page.value is not None
    assert [m.id for m in page.value] == [inbound["id"]]
    assert page.odata_delta_link is not None
    await admin.expire_delta(user=ALICE)
    with pytest.raises(ODataError) as raised:
        await inbox.messages.delta.with_url(page.odata_delta_link).get()
    assert raised.value.response_status_code == 410
    assert raised.value.error is not None
    assert raised.value.error.code == "syncStateNotFound"
