"""Benchmark of the sender against the Gmail sandbox (zero latency), real Kafka and MongoDB-wire servers.

Measures, in one run:

- baseline: the same Gmail sends made directly to the sandbox with the sender's own Gmail client
  (`users.messages.send`, the same MIME), `--concurrency` at a time, as sends per second;
- through the sender: `SendEmail` commands published to Kafka (all at once, as many producers would) and
  answered on the results topic by `--instances` sender instances (one consumer group, quota ledger and
  idempotency records on; each consumes batches of up to 100 commands and decides up to 16 at a time), as
  sends per second from the first command published to the last result read, and its ratio to the baseline
  (issue 7's target: at least 80 %);
- the quota check's added latency: `QuotaLedger.reserve` (one insert of the send's quota slot) p50/p99,
  made one at a time on a day filling up (concurrent sends share one insert, so this is what a reservation
  adds to a send's latency, not to the sender's time per send).

The sandbox, the sender(s) and this driver share one event loop and the machine's cores, so absolute figures
are pessimistic; the ratio is the figure to watch.

    uv run python bench/sender_bench.py [--sends 1000] [--instances 1] [--concurrency 1]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer
from faststream.kafka import KafkaBroker
from pymongo import AsyncMongoClient

from mailsync.common.contracts import (
    CONNECTIONS_CHANGED,
    SEND_COMMANDS,
    SEND_RESULTS,
    Address,
    ConnectionChanged,
    MessageBody,
    SendCompleted,
    SendEmail,
)
from mailsync.common.mongo import Document
from mailsync.devstack.stack import Stack
from mailsync.gmail_sandbox import GmailSandboxAdmin, MailboxSpec, SandboxConfig
from mailsync.gmail_sandbox import create_app as create_sandbox_app
from mailsync.sender.adapters.gmail import GmailClient
from mailsync.sender.adapters.http_session import HttpSession
from mailsync.sender.adapters.quota_ledger import QuotaLedger
from mailsync.sender.app import create_app
from mailsync.sender.domain import MessageContent, build_message, encode, message_id_for
from mailsync.sender.settings import Settings

ADA = "ada@acme.example"
GRACE = Address(email="grace@navy.example", name="Grace Hopper")
TOKEN = "bench-internal-token"  # noqa: S105 - a local benchmark credential
SCOPES = ["https://www.googleapis.com/auth/gmail.modify"]


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def command(request_id: str) -> SendEmail:
    return SendEmail(
        request_id=request_id,
        kind="individual",
        subaccount_id="loc_bench",
        user_id="usr_ada",
        contact_id="con_grace",
        to=(GRACE,),
        subject="Your quote",
        body=MessageBody(text="Hello Grace, here is the quote we talked about. " * 20),
        requested_at=datetime.now(UTC),
    )


def token_api(access_token: str) -> web.Application:
    """The ingest services' access-token contract, answering with one long-lived sandbox token."""

    async def grant(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return web.json_response({"error": "unauthorized"}, status=401)
        return web.json_response(
            {
                "connection_id": request.match_info["connection_id"],
                "provider": "gmail",
                "mailbox_id": "mbx_bench",
                "email_address": ADA,
                "status": "active",
                "access_token": access_token,
                "expires_at": (datetime.now(UTC) + timedelta(minutes=50)).isoformat(),
                "daily_send_limit": 1_000_000,
            }
        )

    app = web.Application()
    app.router.add_post("/internal/v1/connections/{connection_id}/access-token", grant)
    return app


async def direct_sends(base_url: str, access_token: str, sends: int, concurrency: int) -> float:
    """Sends per second of the sender's Gmail client straight to the sandbox."""
    http = HttpSession()
    http.open()
    client = GmailClient(http, api_root=base_url)
    queue = list(range(sends))

    async def worker() -> None:
        while queue:
            n = queue.pop()
            request_id = f"direct-{n}"
            raw = encode(
                build_message(
                    command(request_id),
                    MessageContent(text=command(request_id).body.text, html=None),
                    sender=Address(email=ADA),
                    message_id=message_id_for(request_id, "bench.mailsync.local"),
                    date=datetime.now(UTC),
                )
            )
            await client.send(access_token, raw, None)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    await http.close()
    return sends / elapsed


async def through_sender(settings: Settings, sends: int, instances: int) -> tuple[float, float]:
    """Sends per second through Kafka and the sender(s); and seconds per send per instance."""
    servers = []
    for _ in range(instances):
        server = TestServer(create_app(settings), host="127.0.0.1", port=0)
        await server.start_server()
        servers.append(server)
    # The driver stands in for the services around the sender: it logs nothing per message.
    broker = KafkaBroker(settings.kafka_bootstrap_servers, log_level=logging.DEBUG)
    results: dict[str, SendCompleted] = {}
    warmed = asyncio.Event()
    done = asyncio.Event()

    @broker.subscriber(
        settings.topic(SEND_RESULTS),
        group_id=f"bench-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        batch=True,
    )
    async def on_results(batch: list[SendCompleted]) -> None:
        for result in batch:
            results[result.request_id] = result
        if "warm-up" in results:
            warmed.set()
        if len(results) >= sends + 1:
            done.set()

    await broker.start()
    connection = ConnectionChanged(
        connection_id="conn_bench",
        subaccount_id="loc_bench",
        user_id="usr_ada",
        provider="gmail",
        mailbox_id="mbx_bench",
        email_address=ADA,
        status="active",
        change="connected",
        connected_at=datetime.now(UTC),
    )
    await broker.publish(
        connection.model_dump_json().encode(), topic=settings.topic(CONNECTIONS_CHANGED), key=b"conn_bench"
    )
    # Warm-up: one command end to end (consumer groups joined, connection applied, token cached).
    warm = command("warm-up")
    await asyncio.sleep(3)
    await broker.publish(warm.model_dump_json().encode(), topic=settings.topic(SEND_COMMANDS), key=b"warm")
    await asyncio.wait_for(warmed.wait(), timeout=120)
    if instances > 1:
        await asyncio.sleep(15)  # let the consumer group settle: rebalances would stall the measurement
    assert results["warm-up"].status == "sent", results["warm-up"]  # noqa: S101 - a precondition of the figures
    bodies = [command(f"bench-{n}").model_dump_json().encode() for n in range(sends)]
    started = time.perf_counter()
    # Many producers at once: each command is handed to the producer without waiting for the one before.
    acknowledgements = [
        await broker.publish(
            body, topic=settings.topic(SEND_COMMANDS), key=f"bench-{n}".encode(), no_confirm=True
        )
        for n, body in enumerate(bodies)
    ]
    await asyncio.gather(*acknowledgements)
    await asyncio.wait_for(done.wait(), timeout=600)
    elapsed = time.perf_counter() - started
    failures = [r for r in results.values() if r.status != "sent"]
    assert not failures, failures[:3]  # noqa: S101 - a precondition of the figures
    await broker.stop()
    for server in servers:
        await server.close()
    return sends / elapsed, elapsed * instances / sends


async def quota_latency(settings: Settings, reservations: int) -> list[float]:
    """Seconds per `QuotaLedger.reserve`, sequentially."""
    client: AsyncMongoClient[Document] = AsyncMongoClient(settings.mongodb_uri.get_secret_value())
    ledger = QuotaLedger(client[settings.mongodb_database])
    await ledger.ensure_indexes()
    key = QuotaLedger.key("conn_latency", "2026-03-02")
    expires = datetime.now(UTC) + timedelta(days=3)
    timings = []
    for n in range(reservations):
        started = time.perf_counter()
        await ledger.reserve(key, f"req-{n}", limit=reservations, expires_at=expires)
        timings.append(time.perf_counter() - started)
    await client.close()
    return timings


async def run(args: argparse.Namespace, stack: Stack) -> dict[str, Any]:
    config = SandboxConfig(
        port=0,
        mailboxes=(MailboxSpec(ADA, daily_send_limit=10_000_000),),
        quota_units_per_user_per_minute=1_000_000_000,
    )
    sandbox = TestServer(create_sandbox_app(config), host="127.0.0.1", port=0)
    await sandbox.start_server()
    base_url = str(sandbox.make_url("")).rstrip("/")
    admin = GmailSandboxAdmin(base_url)
    access_token = str((await admin.issue_tokens(ADA, SCOPES))["access_token"])
    tokens = TestServer(token_api(access_token), host="127.0.0.1", port=0)
    await tokens.start_server()
    prefix = f"bench-{uuid.uuid4().hex[:8]}."
    settings = Settings(
        kafka_bootstrap_servers=stack.kafka_bootstrap_servers,
        kafka_topic_prefix=prefix,
        mongodb_uri=stack.mongodb_uri,  # type: ignore[arg-type]  # pydantic wraps the str in SecretStr
        mongodb_database=prefix.rstrip(".").replace(".", "-"),
        http_port=0,
        gmail_api_url=base_url,
        ingest_gmail_url=str(tokens.make_url("")).rstrip("/"),
        internal_api_token=TOKEN,  # type: ignore[arg-type]  # pydantic wraps the str in SecretStr
        log_level="WARNING",
        log_format="text",
    )
    direct = await direct_sends(base_url, access_token, args.sends, args.concurrency)
    sender_rate, seconds_per_send = await through_sender(settings, args.sends, args.instances)
    timings = await quota_latency(settings, min(args.sends, 2000))
    await admin.close()
    await tokens.close()
    await sandbox.close()
    return {
        "direct": direct,
        "sender": sender_rate,
        "seconds_per_send": seconds_per_send,
        "quota_p50": percentile(timings, 0.5),
        "quota_p99": percentile(timings, 0.99),
        "quota_mean": statistics.fmean(timings),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sends", type=int, default=1000)
    parser.add_argument("--instances", type=int, default=1, help="sender instances (at most 3 partitions)")
    parser.add_argument("--concurrency", type=int, default=1, help="concurrent direct sends in the baseline")
    args = parser.parse_args()
    with Stack() as stack:
        stack.start(["kafka", "mongodb"])
        figures = asyncio.run(run(args, stack))
    ratio = figures["sender"] / figures["direct"]
    print(
        f"sends: {args.sends}, sender instances: {args.instances} (batches of up to "
        f"{Settings().send_batch_max_records}, {Settings().send_concurrency} commands at a time each), "
        f"direct concurrency: {args.concurrency}"
    )
    print(f"direct to the sandbox:           {figures['direct']:8.1f} sends/s (baseline)")
    print(
        f"through Kafka and the sender:    {figures['sender']:8.1f} sends/s "
        f"({ratio:.0%} of direct; target >= 80%)"
    )
    print(
        f"quota reservation (S3), alone:   p50 {figures['quota_p50'] * 1000:.2f} ms, "
        f"p99 {figures['quota_p99'] * 1000:.2f} ms, mean {figures['quota_mean'] * 1000:.2f} ms "
        f"(sender's time per send at its throughput: {figures['seconds_per_send'] * 1000:.2f} ms)"
    )


if __name__ == "__main__":
    main()
