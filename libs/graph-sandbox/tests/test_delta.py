"""Delta query on a mail folder: paging, deltaLink rounds, @removed, dead tokens."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from msgraph.generated.users.item.mail_folders.item.messages.delta.delta_get_response import DeltaGetResponse

from mailsync.graph_sandbox import GraphSandboxAdmin
from mailsync.graph_sandbox.testing import GraphTestClient

SdkParse = Callable[[type[Any], Any], Any]
ALICE = "alice@contoso.example"
DELTA = "/v1.0/me/mailFolders/inbox/messages/delta"


async def _round(
    graph: GraphTestClient, url: str, page_size: int | None = None
) -> tuple[list[dict[str, Any]], str, int]:
    """Follow nextLinks until a deltaLink; returns (items, deltaLink, pages)."""
    items: list[dict[str, Any]] = []
    pages = 0
    headers = {"Prefer": f"odata.maxpagesize={page_size}"} if page_size else {}
    while True:
        status, _, body = await graph.call("GET", url, headers=headers)
        assert status == 200, body
        pages += 1
        items += body["value"]
        if "@odata.deltaLink" in body:
            assert "@odata.nextLink" not in body
            return items, body["@odata.deltaLink"], pages
        url = body["@odata.nextLink"]


async def test_initial_round_pages_with_skiptoken_and_ends_with_deltatoken(
    graph: GraphTestClient, admin: GraphSandboxAdmin, alice: dict[str, Any], sdk_parse: SdkParse
) -> None:
    for number in range(5):
        await admin.deliver_inbound(ALICE, sender="c@fabrikam.example", subject=f"m{number}")
    status, headers, body = await graph.call("GET", DELTA, headers={"Prefer": "odata.maxpagesize=2"})
    assert status == 200
    assert headers["Preference-Applied"] == "odata.maxpagesize=2"
    page = sdk_parse(DeltaGetResponse, body)
    assert len(page.value) == 2
    assert "$skiptoken" in parse_qs(urlsplit(page.odata_next_link).query)
    items, delta_link, pages = await _round(graph, page.odata_next_link, 2)
    assert pages == 2
    assert {m["subject"] for m in body["value"] + items} == {f"m{n}" for n in range(5)}
    assert "$deltatoken" in parse_qs(urlsplit(delta_link).query)
    status, _, last = await graph.call("GET", delta_link)
    assert sdk_parse(DeltaGetResponse, last).value == []


async def test_next_round_reports_new_changed_moved_and_deleted(
    graph: GraphTestClient, admin: GraphSandboxAdmin, alice: dict[str, Any], sdk_parse: SdkParse
) -> None:
    keep = await admin.deliver_inbound(ALICE, sender="c@fabrikam.example", subject="keep")
    doomed = await admin.deliver_inbound(ALICE, sender="c@fabrikam.example", subject="doomed")
    moved = await admin.deliver_inbound(ALICE, sender="c@fabrikam.example", subject="moved")
    _, delta_link, _ = await _round(graph, f"{DELTA}?$select=subject,isRead")

    fresh = await admin.deliver_inbound(ALICE, sender="c@fabrikam.example", subject="fresh")
    await admin.update_message(ALICE, keep["id"], is_read=True)
    await admin.delete_message(ALICE, doomed["id"], hard=True)
    await admin.update_message(ALICE, moved["id"], move_to="deleteditems")

    status, _, body = await graph.call("GET", delta_link)
    assert status == 200
    sdk_parse(DeltaGetResponse, body)
    by_id = {item["id"]: item for item in body["value"]}
    assert by_id[fresh["id"]]["subject"] == "fresh"
    assert by_id[keep["id"]]["isRead"] is True
    assert "body" not in by_id[keep["id"]]  # $select from the first request is kept in the token
    assert by_id[doomed["id"]]["@removed"] == {"reason": "deleted"}
    assert by_id[moved["id"]]["@removed"] == {"reason": "deleted"}
    assert set(by_id) == {fresh["id"], keep["id"], doomed["id"], moved["id"]}

    status, _, replay = await graph.call("GET", delta_link)
    assert {item["id"] for item in replay["value"]} == set(by_id)  # delta links can be replayed


async def test_filter_and_change_type_restrictions(
    graph: GraphTestClient, admin: GraphSandboxAdmin, alice: dict[str, Any]
) -> None:
    await admin.deliver_inbound(ALICE, sender="c@fabrikam.example", subject="one")
    status, _, body = await graph.call("GET", f"{DELTA}?$filter=receivedDateTime ge 2000-01-01T00:00:00Z")
    assert status == 200
    assert len(body["value"]) == 1
    status, _, body = await graph.call("GET", f"{DELTA}?$filter=subject eq 'one'")
    assert status == 400
    _, delta_link, _ = await _round(graph, f"{DELTA}?changeType=created")
    message = await admin.deliver_inbound(ALICE, sender="c@fabrikam.example", subject="two")
    await admin.delete_message(ALICE, message["id"], hard=True)
    first = await admin.deliver_inbound(ALICE, sender="c@fabrikam.example", subject="three")
    status, _, body = await graph.call("GET", delta_link)
    assert [item["id"] for item in body["value"]] == [first["id"]]


async def test_expired_or_unknown_tokens_are_410_sync_state_not_found(
    graph: GraphTestClient, admin: GraphSandboxAdmin, alice: dict[str, Any]
) -> None:
    await admin.deliver_inbound(ALICE, sender="c@fabrikam.example", subject="one")
    _, delta_link, _ = await _round(graph, DELTA)
    token = parse_qs(urlsplit(delta_link).query)["$deltatoken"][0]
    assert await admin.expire_delta(token=token) == 1
    status, _, body = await graph.call("GET", delta_link)
    assert (status, body["error"]["code"]) == (410, "syncStateNotFound")
    status, _, body = await graph.call("GET", f"{DELTA}?$skiptoken=made-up")
    assert (status, body["error"]["code"]) == (410, "syncStateNotFound")


async def test_resync_required_carries_a_location_with_an_empty_deltatoken(
    graph: GraphTestClient, admin: GraphSandboxAdmin, alice: dict[str, Any]
) -> None:
    _, delta_link, _ = await _round(graph, DELTA)
    await admin.require_resync(ALICE)
    status, headers, body = await graph.call("GET", delta_link)
    assert (status, body["error"]["code"]) == (410, "resyncRequired")
    assert headers["Location"].endswith("/messages/delta?$deltatoken=")
    items, _, _ = await _round(graph, DELTA)
    assert items == []


@pytest.mark.parametrize("config", [{"sync_state_capacity": 2}], indirect=True)
async def test_sync_state_cache_evicts_old_tokens(graph: GraphTestClient, alice: dict[str, Any]) -> None:
    _, first_link, _ = await _round(graph, DELTA)
    await _round(graph, DELTA)
    await _round(graph, DELTA)
    status, _, body = await graph.call("GET", first_link)
    assert (status, body["error"]["code"]) == (410, "syncStateNotFound")
