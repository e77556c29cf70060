"""The domain modules stay pure: no HTTP, Pub/Sub, SMTP or adapter imports (checked on the source)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import mailsync.gmail_sandbox

PACKAGE = Path(mailsync.gmail_sandbox.__file__).parent
DOMAIN = [
    "clock",
    "errors",
    "scopes",
    "mime",
    "threading_rules",
    "mailbox",
    "search",
    "oauth",
    "quota",
    "faults",
]
FORBIDDEN = ("aiohttp", "google.cloud", "grpc", "smtplib", "socket", "requests", "httplib2")
ADAPTERS = (
    "gmail_api",
    "oauth_endpoints",
    "admin_api",
    "admin_client",
    "batch",
    "app",
    "cli",
    "notifications",
    "push",
    "outbound",
    "sandbox",
)


def _imports(module: str) -> set[str]:
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("module", DOMAIN)
def test_domain_module_has_no_io_or_adapter_imports(module: str) -> None:
    for name in _imports(module):
        assert not name.startswith(FORBIDDEN), f"{module} imports {name}"
        assert name.removeprefix("mailsync.gmail_sandbox.") not in ADAPTERS, f"{module} imports {name}"
