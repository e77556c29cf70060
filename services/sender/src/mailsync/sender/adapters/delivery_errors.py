"""How a transport reports a failed send, independent of the provider (Gmail API or SMTP).

The handlers decide from these what happens to the command: retry (`RetryableDeliveryError`), fail it and
release its quota reservation (`DeliveryRejectedError`), or fail it with `quota_exceeded`
(`SendingLimitError`).
"""

from __future__ import annotations

from datetime import datetime

from mailsync.common.contracts import SendFailureReason


class RetryableDeliveryError(Exception):
    """The send may succeed later. `outcome_unknown`: the request may have reached the provider (a timeout
    or dropped connection after sending, or a 5xx), so it may have been sent; check before resending."""

    def __init__(self, detail: str, *, retry_after: float | None = None, outcome_unknown: bool) -> None:
        super().__init__(detail)
        self.detail = detail
        self.retry_after = retry_after
        self.outcome_unknown = outcome_unknown


class DeliveryRejectedError(Exception):
    """The provider refused the message for good; nothing was sent."""

    def __init__(self, reason: SendFailureReason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class SendingLimitError(Exception):
    """The provider's own daily sending limit refused the send (S3 backstop); nothing was sent."""

    def __init__(self, detail: str, resets_at: datetime) -> None:
        super().__init__(detail)
        self.detail = detail
        self.resets_at = resets_at


class AccessTokenRejectedError(Exception):
    """The provider refused the access token (401): it was revoked or expired early."""
