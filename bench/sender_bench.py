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

Baseline and sender take turns `--rounds` times (new request ids each round, the senders kept running, the
side going first alternating), so a change in the shared machine's load between two phases cannot decide the
figure: each round's ratio is printed, and their median is the figure. A first round of `--warm-up` sends
each way is not counted: the Kafka broker's JVM compiles its hot paths during the first thousands of records,
and its CPU per record halves meanwhile.

By default the sandbox and each sender instance run as processes of their own, as deployed (the Gmail API is
another machine's work); `--one-loop` runs them in this driver's event loop instead, where the sandbox's and
the driver's work count against the sender. Either way they share the machine's cores with Kafka and the
MongoDB-wire server. The driver reads the results as a downstream service would, with a fetch that waits up
to 50 ms for more records instead of one fetch per result: reading them is not the sender's work, and a fetch
per record would cost the broker more CPU than the sender's own publishing.

    uv run python bench/sender_bench.py [--sends 2000] [--rounds 3] [--warm-up 4000]
                                        [--instances 1] [--concurrency 1] [--one-loop]
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
from dataclasses import dataclass
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
RESULTS_FETCH_MIN_BYTES = 256 * 1024
RESULTS_FETCH_MAX_WAIT_MS = 50


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


async def direct_sends(base_url: str, access_token: str, round_: int, sends: int, concurrency: int) -> float:
    """Sends per second of the sender's Gmail client straight to the sandbox."""
    http = HttpSession()
    http.open()
    client = GmailClient(http, api_root=base_url)
    queue = list(range(sends))

    async def worker() -> None:
        while queue:
            n = queue.pop()
            request_id = f"direct-{round_}-{n}"
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
        "MAILSYNC_KAFKA_ENSURE_TOPICS": str(settings.kafka_ensure_topics).lower(),
        "MAILSYNC_KAFKA_TOPIC_PARTITIONS": str(settings.kafka_topic_partitions),
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


@dataclass
class Round:
    """One turn of the sender: its sends per second, seconds per send per instance, and the CPU seconds per
    send of each watched process."""

    rate: float
    seconds_per_send: float
    cpu: dict[str, float]


class ThroughSender:
    """Sender instance(s) running and warmed up, and the driver that publishes commands and reads results.

    The senders run in processes of their own when `run_dir` (for their logs) is given, else in this event
    loop."""

    def __init__(
        self, settings: Settings, instances: int, run_dir: Path | None, watched: dict[str, int]
    ) -> None:
        self._settings = settings
        self._instances = instances
        self._run_dir = run_dir
        self._watched = dict(watched)
        self._servers: list[TestServer] = []
        self._processes: list[ManagedProcess] = []
        # The driver stands in for the services around the sender: it logs nothing per message.
        self._broker = KafkaBroker(settings.kafka_bootstrap_servers, log_level=logging.DEBUG)
        # Only what the figures need of each result; validating every `SendCompleted` would put the
        # driver's work on the cores the sender needs.
        self._results: dict[str, dict[str, Any]] = {}
        self._awaited: set[str] = set()
        self._arrived = asyncio.Event()

    async def start(self) -> None:
        settings = self._settings
        for n in range(self._instances):
            if self._run_dir is not None:
                process = await asyncio.to_thread(sender_process, settings, self._run_dir, n)
                self._processes.append(process)
                self._watched[process.name] = process.pid
                continue
            server = TestServer(create_app(settings), host="127.0.0.1", port=0)
            await server.start_server()
            self._servers.append(server)

        @self._broker.subscriber(
            settings.topic(SEND_RESULTS),
            group_id=f"bench-{uuid.uuid4().hex[:8]}",
            auto_offset_reset="earliest",
            batch=True,
            fetch_min_bytes=RESULTS_FETCH_MIN_BYTES,
            fetch_max_wait_ms=RESULTS_FETCH_MAX_WAIT_MS,
        )
        async def on_results(batch: list[dict[str, Any]]) -> None:
            for result in batch:
                self._results[result["request_id"]] = result
            if self._awaited <= self._results.keys():
                self._arrived.set()

        await self._broker.start()
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
        await self._broker.publish(
            connection.model_dump_json().encode(),
            topic=settings.topic(CONNECTIONS_CHANGED),
            key=b"conn_bench",
        )
        # Warm-up: one command end to end (consumer groups joined, connection applied, token cached).
        await asyncio.sleep(3)
        await self._answered(["warm-up"])
        if self._instances > 1:
            await asyncio.sleep(15)  # let the consumer group settle: rebalances would stall the measurement

    async def _answered(self, request_ids: list[str]) -> None:
        """Publish a command for each of `request_ids` at once, as many producers would (each handed to the
        producer without waiting for the one before), and wait until every one is answered `sent`."""
        self._awaited = set(request_ids)
        self._arrived.clear()
        acknowledgements = [
            await self._broker.publish(
                command(request_id).model_dump_json().encode(),
                topic=self._settings.topic(SEND_COMMANDS),
                key=request_id.encode(),
                no_confirm=True,
            )
            for request_id in request_ids
        ]
        await asyncio.gather(*acknowledgements)
        await asyncio.wait_for(self._arrived.wait(), timeout=600)
        failures = [self._results[r] for r in request_ids if self._results[r]["status"] != "sent"]
        assert not failures, failures[:3]  # noqa: S101 - a precondition of the figures

    async def measure(self, round_: int, sends: int) -> Round:
        """Sends per second of `sends` new commands, from the first published to the last answer read."""
        request_ids = [f"bench-{round_}-{n}" for n in range(sends)]
        cpu_before = {name: cpu_seconds(pid) for name, pid in self._watched.items()}
        started = time.perf_counter()
        await self._answered(request_ids)
        elapsed = time.perf_counter() - started
        cpu = {name: (cpu_seconds(pid) - cpu_before[name]) / sends for name, pid in self._watched.items()}
        return Round(sends / elapsed, elapsed * self._instances / sends, cpu)

    async def stop(self) -> None:
        await self._broker.stop()
        for server in self._servers:
            await server.close()
        for process in self._processes:
            process.stop()


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
        # The contract topics with their partitions (3), as operations provision them: a topic the first
        # subscriber creates has one partition, and more instances would then have nothing to share.
        kafka_ensure_topics=True,
        mongodb_uri=stack.mongodb_uri,  # type: ignore[arg-type]  # pydantic wraps the str in SecretStr
        mongodb_database=prefix.rstrip(".").replace(".", "-"),
        http_port=0,
        gmail_api_url=base_url,
        ingest_gmail_url=str(tokens.make_url("")).rstrip("/"),
        internal_api_token=TOKEN,  # type: ignore[arg-type]  # pydantic wraps the str in SecretStr
        log_level="WARNING",
        log_format="text",
    )
    run_dir = None if args.one_loop else stack.run_dir
    watched = {"this process": os.getpid(), **{p.name: p.pid for p in stack.processes()}}
    if sandbox_proc is not None:
        watched[sandbox_proc.name] = sandbox_proc.pid
    senders = ThroughSender(settings, args.instances, run_dir, watched)
    await senders.start()
    # A round not counted: the broker's JVM compiles its hot paths during the first thousands of records.
    await direct_sends(base_url, access_token, -1, args.warm_up, args.concurrency)
    await senders.measure(-1, args.warm_up)
    rounds: list[tuple[float, Round]] = []
    for round_ in range(args.rounds):
        # The two sides take turns at going first: the sandbox mailbox and the databases grow during a run.
        if round_ % 2:
            through = await senders.measure(round_, args.sends)
        before = {name: cpu_seconds(pid) for name, pid in watched.items()}
        direct = await direct_sends(base_url, access_token, round_, args.sends, args.concurrency)
        direct_cpu = {name: (cpu_seconds(pid) - before[name]) / args.sends for name, pid in watched.items()}
        if not round_ % 2:
            through = await senders.measure(round_, args.sends)
        rounds.append((direct, through))
        print(
            f"round {round_ + 1}: direct {direct:6.1f} sends/s, "
            f"through the sender {through.rate:6.1f} sends/s, ratio {through.rate / direct:.2f}"
        )
        print(f"  CPU per direct send:              {_per_process(direct_cpu)}")
        print(f"  CPU per send through the sender:  {_per_process(through.cpu)}")
    await senders.stop()
    timings = await quota_latency(settings, min(args.sends, 2000))
    await admin.close()
    await tokens.close()
    if sandbox is not None:
        await sandbox.close()
    if sandbox_proc is not None:
        sandbox_proc.stop()
    return {
        "rounds": rounds,
        "quota_p50": percentile(timings, 0.5),
        "quota_p99": percentile(timings, 0.99),
        "quota_mean": statistics.fmean(timings),
    }


def _per_process(cpu: dict[str, float]) -> str:
    return ", ".join(f"{name} {seconds * 1000:.2f} ms" for name, seconds in cpu.items() if seconds >= 0.00001)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sends", type=int, default=2000, help="sends per round, each way")
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="turns of direct sends and sends through the sender (median counts)",
    )
    parser.add_argument(
        "--warm-up", type=int, default=4000, help="sends each way in a first round that is not counted"
    )
    parser.add_argument("--instances", type=int, default=1, help="sender instances (at most 3 partitions)")
    parser.add_argument("--concurrency", type=int, default=1, help="concurrent direct sends in the baseline")
    parser.add_argument(
        "--one-loop", action="store_true", help="run the sandbox and the sender(s) in this event loop"
    )
    args = parser.parse_args()
    where = "in this event loop" if args.one_loop else "each in a process of its own"
    print(f"sandbox and sender(s): {where}")
    print(
        f"sends per round: {args.sends}, rounds: {args.rounds}, sender instances: {args.instances} "
        f"(batches of up to {Settings().send_batch_max_records}, "
        f"{Settings().send_concurrency} commands at a time each), "
        f"direct concurrency: {args.concurrency}"
    )
    with Stack() as stack:
        stack.start(["kafka", "mongodb"])
        figures = asyncio.run(run(args, stack))
    rounds: list[tuple[float, Round]] = figures["rounds"]
    ratios = [through.rate / direct for direct, through in rounds]
    print(f"direct to the sandbox:           {statistics.median(d for d, _ in rounds):8.1f} sends/s (median)")
    through = statistics.median(t.rate for _, t in rounds)
    print(f"through Kafka and the sender:    {through:8.1f} sends/s (median)")
    print(f"ratio, median of {args.rounds} rounds:     {statistics.median(ratios):.2f} (target >= 0.80)")
    seconds_per_send = statistics.median(t.seconds_per_send for _, t in rounds)
    print(
        f"quota reservation (S3), alone:   p50 {figures['quota_p50'] * 1000:.2f} ms, "
        f"p99 {figures['quota_p99'] * 1000:.2f} ms, mean {figures['quota_mean'] * 1000:.2f} ms "
        f"(sender's time per send at its throughput: {seconds_per_send * 1000:.2f} ms)"
    )


if __name__ == "__main__":
    main()
