"""The domain modules stay free of I/O: no aiohttp, sockets or HTTP handlers (STYLE: pure domain layer)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import mailsync.graph_sandbox as package

DOMAIN = (
    "clock",
    "identifiers",
    "mailbox",
    "directory",
    "delta",
    "odata_query",
    "representation",
    "subscriptions",
    "identity",
    "jose",
    "throttling",
    "faults",
    "uploads",
    "errors",
)
FORBIDDEN = ("aiohttp", "asyncio", "socket", "ssl", "requests", "httpx")


@pytest.mark.parametrize("module", DOMAIN)
def test_domain_module_has_no_io_imports(module: str) -> None:
    source = (Path(package.__file__).parent / f"{module}.py").read_text()
    imported: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
            if node.module.startswith("mailsync.graph_sandbox"):
                for alias in node.names:
                    target = node.module.removeprefix("mailsync.graph_sandbox").lstrip(".") or alias.name
                    assert target.split(".")[0] in DOMAIN, f"{module} imports the non-domain module {target}"
    assert not imported & set(FORBIDDEN), f"{module} imports {imported & set(FORBIDDEN)}"
