"""A faithful local stand-in for the Gmail API, Google OAuth and Gmail's Pub/Sub notifications.

Build it with :func:`create_app` (see :class:`SandboxConfig`), drive it with :class:`GmailSandboxAdmin`.
"""

from mailsync.gmail_sandbox.admin_client import GmailSandboxAdmin
from mailsync.gmail_sandbox.app import SANDBOX_KEY, create_app
from mailsync.gmail_sandbox.clock import Clock, ManualClock, SystemClock
from mailsync.gmail_sandbox.config import DEFAULT_CLIENT, MailboxSpec, SandboxConfig
from mailsync.gmail_sandbox.mailbox import AccountKind

__all__ = [
    "DEFAULT_CLIENT",
    "SANDBOX_KEY",
    "AccountKind",
    "Clock",
    "GmailSandboxAdmin",
    "MailboxSpec",
    "ManualClock",
    "SandboxConfig",
    "SystemClock",
    "create_app",
]
