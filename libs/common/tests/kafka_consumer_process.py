"""A consumer that dies before committing: run as a separate process by test_delivery.py.

It subscribes with the project's broker factory, records the event it received in the file named by
`MARKER_FILE`, works for longer than Kafka's auto-commit interval (5 s, so an at-most-once configuration would
have committed by then), then kills itself with SIGKILL inside the handler, before the handler returns.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from mailsync.common.contracts import MAILBOX_CHANGED, MailboxChanged
from mailsync.common.service import create_runtime
from mailsync.common.settings import ServiceSettings

AUTO_COMMIT_INTERVAL_SECONDS = 5.0


async def main() -> None:
    settings = ServiceSettings()
    marker = Path(os.environ["MARKER_FILE"])
    runtime = create_runtime(settings)

    @runtime.broker.subscriber(
        settings.topic(MAILBOX_CHANGED),
        group_id=settings.consumer_group("kill-test"),
        auto_offset_reset="earliest",
    )
    async def on_mailbox_changed(event: MailboxChanged) -> None:
        marker.write_text(str(event.event_id), encoding="utf-8")  # noqa: ASYNC240 - the process dies next
        await asyncio.sleep(AUTO_COMMIT_INTERVAL_SECONDS + 1.5)
        os.kill(os.getpid(), signal.SIGKILL)

    await runtime.broker.start()
    await asyncio.sleep(60)
    sys.exit("no message arrived within 60 s")


if __name__ == "__main__":
    asyncio.run(main())
