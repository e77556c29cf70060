"""Creating the contract topics (and their dead-letter topics) on a cluster, idempotently.

In production, topics are provisioned by operations with the partition count and replication they choose
(see docs/operations.md); `python -m mailsync.common.topics_admin --partitions 12 --replication 3` does it
from the contract registry. Services call `ensure_topics` at start-up only when
`MAILSYNC_KAFKA_ENSURE_TOPICS=true` (the local stack and tests), because a consumer that subscribes to a
topic that does not exist yet only notices it at its next metadata refresh (up to five minutes).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from mailsync.common.contracts import CONTRACTS, dead_letter_topic


def contract_topic_names(prefix: str = "") -> list[str]:
    """Every contract topic and its dead-letter topic, with `prefix`."""
    names = [contract.topic for contract in CONTRACTS]
    return [f"{prefix}{name}" for topic in names for name in (topic, dead_letter_topic(topic))]


async def ensure_topics(
    bootstrap_servers: str, names: list[str], *, partitions: int, replication: int
) -> list[str]:
    """Create the topics in `names` that do not exist yet; returns the ones this call created."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id="mailsync-topics-admin")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [name for name in names if name not in existing]
        if missing:
            # Another instance may create them at the same moment.
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(
                    [
                        NewTopic(name, num_partitions=partitions, replication_factor=replication)
                        for name in missing
                    ]
                )
        return missing
    finally:
        await admin.close()


def main(argv: list[str] | None = None) -> int:
    """Create every contract topic on the cluster named by MAILSYNC_KAFKA_BOOTSTRAP_SERVERS."""
    parser = argparse.ArgumentParser(prog="python -m mailsync.common.topics_admin", description=__doc__)
    parser.add_argument("--bootstrap-servers", default=os.environ.get("MAILSYNC_KAFKA_BOOTSTRAP_SERVERS"))
    parser.add_argument("--prefix", default=os.environ.get("MAILSYNC_KAFKA_TOPIC_PREFIX", ""))
    parser.add_argument("--partitions", type=int, default=12)
    parser.add_argument("--replication", type=int, default=3)
    args = parser.parse_args(argv)
    if not args.bootstrap_servers:
        parser.error("give --bootstrap-servers or set MAILSYNC_KAFKA_BOOTSTRAP_SERVERS")
    created = asyncio.run(
        ensure_topics(
            args.bootstrap_servers,
            contract_topic_names(args.prefix),
            partitions=args.partitions,
            replication=args.replication,
        )
    )
    sys.stdout.write("".join(f"created {name}\n" for name in created) or "all topics exist\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
