"""AsyncAPI documents generated from the services' own brokers, committed under `docs/asyncapi/`.

By convention each service package `mailsync.<name>` has `app.create_app(settings)` and `settings.Settings`;
building the app registers its subscribers and publishers without connecting anything, and FastStream turns
the broker into an AsyncAPI 3.0 document (channels, operations, payload schemas from the handler signatures).

    python -m mailsync.common.asyncapi write router sender ...   # regenerate
    python -m mailsync.common.asyncapi check router sender ...   # exit 1 if a committed document is stale
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path
from typing import Any

from faststream.specification import AsyncAPI

from mailsync.common.service import RUNTIME

DOCS_DIR = Path("docs/asyncapi")


def build_document(service: str) -> dict[str, Any]:
    """The AsyncAPI document of `mailsync.<service>` as plain JSON data."""
    app_module = importlib.import_module(f"mailsync.{service}.app")
    settings_module = importlib.import_module(f"mailsync.{service}.settings")
    settings = settings_module.Settings()
    runtime = app_module.create_app(settings)[RUNTIME]
    package = importlib.import_module(f"mailsync.{service}")
    spec = AsyncAPI(
        runtime.broker,
        title=f"mailsync {settings.service_name}",
        version="1",
        description=(package.__doc__ or "").strip(),
    )
    document: dict[str, Any] = spec.to_specification().to_jsonable()
    # The local default address is an artefact of generation, not part of the contract.
    document.pop("servers", None)
    return document


def render(document: dict[str, Any]) -> str:
    """Stable text for a committed document."""
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write or check the documents of the named services; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m mailsync.common.asyncapi", description=__doc__)
    parser.add_argument("action", choices=["write", "check"])
    parser.add_argument("services", nargs="+", help="service packages, e.g. router ingest_gmail")
    parser.add_argument("--dir", type=Path, default=DOCS_DIR, help="where the documents live")
    args = parser.parse_args(argv)
    stale = []
    for service in args.services:
        path = args.dir / f"{service.replace('_', '-')}.json"
        text = render(build_document(service))
        if args.action == "write":
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        elif not path.exists() or path.read_text(encoding="utf-8") != text:
            stale.append(str(path))
    if stale:
        sys.stderr.write(f"stale AsyncAPI documents (run `make docs`): {', '.join(stale)}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
