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

By default the sandbox and each sender instance run as processes of their own, as deployed (the Gmail API is
another machine's work); `--one-loop` runs them in this driver's event loop instead, where the sandbox's and
the driver's work count against the sender. Either way they share the machine's cores with Kafka and the
MongoDB-wire server; the ratio is the figure to watch.

    uv run python bench/sender_bench.py [--sends 1000] [--instances 1] [--concurrency 1] [--one-loop]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import logging
import os
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
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
from mailsync.devstack.ports import free_port
from mailsync.devstack.process import ManagedProcess
from mailsync.devstack.stack import Stack
from mailsync.devstack.supervisor import is_ready
from mailsync.gmail_sandbox import GmailSandboxAdmin, MailboxSpec, SandboxConfig
from mailsync.gmail_sandbox import create_app as create_sandbox_app
from mailsync.sender.adapters.gmail import GmailClient
from mailsync.sender.adapters.http_session import HttpSession
from mailsync.sender.adapters.quota_ledger import QuotaLedger
from mailsync.sender.app import create_app
from mailsync.sender.domain import MessageContent, build_message, encode, message_id_for
from mailsync.sender.settings import Settings

ADA = "ada@acme.example"
SANDBOX_DAILY_SENDS = 10_000_000
SANDBOX_QUOTA_UNITS = 1_000_000_000
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


def sender_process(settings: Settings, run_dir: Path, n: int) -> ManagedProcess:
    """A sender instance as deployed (`python -m mailsync.sender`), ready."""
    port = free_port()
    environ = {
        **os.environ,
        "MAILSYNC_KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "MAILSYNC_KAFKA_TOPIC_PREFIX": settings.kafka_topic_prefix,
        "MAILSYNC_MONGODB_URI": settings.mongodb_uri.get_secret_value(),
        "MAILSYNC_MONGODB_DATABASE": settings.mongodb_database,
        "MAILSYNC_HTTP_PORT": str(port),
        "MAILSYNC_GMAIL_API_URL": settings.gmail_api_url,
        "MAILSYNC_INGEST_GMAIL_URL": settings.ingest_gmail_url,
        "MAILSYNC_INTERNAL_API_TOKEN": settings.internal_api_token.get_secret_value(),
        "MAILSYNC_LOG_LEVEL": "WARNING",
    }
    process = ManagedProcess(
        f"sender-{n}",
        [sys.executable, "-m", "mailsync.sender"],
        log_path=run_dir / f"sender-{n}.log",
        environ=environ,
    )
    process.wait_ready(functools.partial(is_ready, f"http://127.0.0.1:{port}/readyz"), timeout=60)
    return process


def cpu_seconds(pid: int) -> float:
    """The CPU time (user and system) process `pid` has used so far (Linux `/proc`)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def through_sender(
    settings: Settings, sends: int, instances: int, run_dir: Path | None, watched: dict[str, int]
) -> tuple[float, float, dict[str, float]]:
    """Sends per second through Kafka and the sender(s); seconds per send per instance; and the CPU seconds
    per send each of the `watched` processes (and the senders) used meanwhile. The senders run in processes
    of their own when `run_dir` (for their logs) is given, else in this event loop."""
    servers = []
    processes = []
    watched = dict(watched)
    for n in range(instances):
        if run_dir is not None:
            process = await asyncio.to_thread(sender_process, settings, run_dir, n)
            processes.append(process)
            watched[process.name] = process.pid
            continue
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
    cpu_before = {name: cpu_seconds(pid) for name, pid in watched.items()}
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
    cpu = {name: (cpu_seconds(pid) - cpu_before[name]) / sends for name, pid in watched.items()}
    failures = [r for r in results.values() if r.status != "sent"]
    assert not failures, failures[:3]  # noqa: S101 - a precondition of the figures
    await broker.stop()
    for server in servers:
        await server.close()
    for process in processes:
        process.stop()
    return sends / elapsed, elapsed * instances / sends, cpu


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


def sandbox_process(run_dir: Path) -> tuple[ManagedProcess, str]:
    """The Gmail sandbox on its own (`mailsync-gmail-sandbox`), ready, and its base URL."""
    port = free_port()
    process = ManagedProcess(
        "gmail-sandbox",
        [
            str(Path(sys.executable).parent / "mailsync-gmail-sandbox"),
            "--port",
            str(port),
            "--quota-units-per-minute",
            str(SANDBOX_QUOTA_UNITS),
        ],
        log_path=run_dir / "gmail-sandbox.log",
        environ=os.environ,
    )
    base_url = f"http://127.0.0.1:{port}"
    process.wait_ready(functools.partial(is_ready, f"{base_url}/_admin/health"), timeout=60)
    return process, base_url


async def run(args: argparse.Namespace, stack: Stack) -> dict[str, Any]:
    sandbox: TestServer | None = None
    sandbox_proc: ManagedProcess | None = None
    if args.one_loop:
        config = SandboxConfig(
            port=0,
            mailboxes=(MailboxSpec(ADA, daily_send_limit=SANDBOX_DAILY_SENDS),),
            quota_units_per_user_per_minute=SANDBOX_QUOTA_UNITS,
        )
        sandbox = TestServer(create_sandbox_app(config), host="127.0.0.1", port=0)
        await sandbox.start_server()
        base_url = str(sandbox.make_url("")).rstrip("/")
    else:
        sandbox_proc, base_url = await asyncio.to_thread(sandbox_process, stack.run_dir)
    admin = GmailSandboxAdmin(base_url)
    if sandbox_proc is not None:
        await admin.create_mailbox(ADA, daily_send_limit=SANDBOX_DAILY_SENDS)
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
    run_dir = None if args.one_loop else stack.run_dir
    watched = {"this process": os.getpid(), **{p.name: p.pid for p in stack.processes()}}
    if sandbox_proc is not None:
        watched[sandbox_proc.name] = sandbox_proc.pid
    sender_rate, seconds_per_send, cpu = await through_sender(
        settings, args.sends, args.instances, run_dir, watched
    )
    timings = await quota_latency(settings, min(args.sends, 2000))
    await admin.close()
    await tokens.close()
    if sandbox is not None:
        await sandbox.close()
    if sandbox_proc is not None:
        sandbox_proc.stop()
    return {
        "direct": direct,
        "sender": sender_rate,
        "seconds_per_send": seconds_per_send,
        "cpu": cpu,
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
    parser.add_argument(
        "--one-loop", action="store_true", help="run the sandbox and the sender(s) in this event loop"
    )
    args = parser.parse_args()
    with Stack() as stack:
        stack.start(["kafka", "mongodb"])
        figures = asyncio.run(run(args, stack))
    ratio = figures["sender"] / figures["direct"]
    where = "in this event loop" if args.one_loop else "each in a process of its own"
    print(f"sandbox and sender(s): {where}")
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
    used = ", ".join(f"{name} {seconds * 1000:.2f} ms" for name, seconds in figures["cpu"].items())
    print(f"CPU per send through the sender:  {used}")


if __name__ == "__main__":
    main()
