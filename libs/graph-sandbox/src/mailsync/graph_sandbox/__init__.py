"""A local stand-in for Microsoft Graph mail and the Microsoft identity platform.

The composition root is :func:`mailsync.graph_sandbox.app.create_app`; :class:`SandboxServer` runs it on
loopback (TLS included) and :class:`GraphSandboxAdmin` drives its ``/_admin/`` API from tests and the demo.
"""

from mailsync.graph_sandbox.admin_client import GraphSandboxAdmin
from mailsync.graph_sandbox.app import create_app
from mailsync.graph_sandbox.clock import Clock, ManualClock, SystemClock
from mailsync.graph_sandbox.config import SandboxConfig
from mailsync.graph_sandbox.server import SandboxServer

__all__ = [
    "Clock",
    "GraphSandboxAdmin",
    "ManualClock",
    "SandboxConfig",
    "SandboxServer",
    "SystemClock",
    "create_app",
]
