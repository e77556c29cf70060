"""The subaccount-level provider over SMTP (S2, C5), with aiosmtplib.

The message is sent as built (Bcc recipients go in the envelope only: `send_message` drops the header).
Classification: a 5xx reply (recipient or message refused) -> `DeliveryRejectedError`; a 4xx reply or a
connection that could not be made -> `RetryableDeliveryError` (not sent); a timeout or disconnect after DATA
was started -> `RetryableDeliveryError(outcome_unknown=True)`. SMTP offers no way to ask whether a message
went out, so an unknown outcome is resent with the same Message-ID (receivers can drop the duplicate).
"""

from __future__ import annotations

from email.message import EmailMessage

import aiosmtplib

from mailsync.common.contracts import SendFailureReason
from mailsync.sender.adapters.delivery_errors import DeliveryRejectedError, RetryableDeliveryError


class SmtpRelay:
    """One SMTP submission server."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        username: str | None = None,
        password: str | None = None,
        use_tls: bool = False,
        start_tls: bool | None = None,
        timeout_seconds: float = 30.0,
    ) -> None:
        self._host = host
        self._port = port
        self._username = username
        self._password = password
        self._use_tls = use_tls
        self._start_tls = start_tls
        self._timeout = timeout_seconds

    async def send(self, message: EmailMessage) -> None:
        """Submit `message` to its To, Cc and Bcc recipients."""
        try:
            await aiosmtplib.send(
                message,
                hostname=self._host,
                port=self._port,
                username=self._username,
                password=self._password,
                use_tls=self._use_tls,
                start_tls=self._start_tls,
                timeout=self._timeout,
            )
        except aiosmtplib.SMTPRecipientsRefused as error:
            raise DeliveryRejectedError(
                SendFailureReason.PROVIDER_REJECTED, f"SMTP refused every recipient: {error}"
            ) from error
        except aiosmtplib.SMTPResponseException as error:
            detail = f"SMTP answered {error.code}: {error.message}"
            if 500 <= error.code < 600:
                raise DeliveryRejectedError(SendFailureReason.PROVIDER_REJECTED, detail) from error
            raise RetryableDeliveryError(detail, outcome_unknown=False) from error
        except (aiosmtplib.SMTPConnectError, aiosmtplib.SMTPConnectTimeoutError) as error:
            raise RetryableDeliveryError(
                f"SMTP server unreachable: {error}", outcome_unknown=False
            ) from error
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as error:
            raise RetryableDeliveryError(f"SMTP failed: {error!r}", outcome_unknown=True) from error
