"""The sender's use cases, one module per concern.

* `commands`: answering a batch of send commands exactly once each (claim, decide concurrently, store,
  publish), and the connection read model.
* `gmail`, `outlook`, `subaccount`: the three ways a command goes out.
* `mailbox`: tokens, the quota ledger (S3) and failure answers shared by the Gmail and Outlook routes.
* `attempts`: the crash-recovery journal, quota release and stored content every route shares.
* `retries`: retrying one provider call with backoff, and looking before resending.
"""

from mailsync.sender.handlers.commands import Sender
from mailsync.sender.handlers.retries import RetrySchedule

__all__ = ["RetrySchedule", "Sender"]
