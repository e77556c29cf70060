"""Command line of the schema files: ``python -m mailsync.common.contracts.schemas {write,check}``.

``write`` regenerates missing or stale files and refuses (exit 2, nothing written) when a change is
incompatible. ``check`` writes nothing and exits 1 when any file is missing, stale, incompatible or
orphaned, so CI catches a model changed without its schema.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from mailsync.common.contracts.schemas.generation import (
    SCHEMA_DIR,
    IncompatibleSchemaError,
    check_schemas,
    write_schemas,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["main"]

EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_REFUSED = 2


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m mailsync.common.contracts.schemas",
        description="Generate and check the committed JSON Schemas of the mailsync contracts.",
    )
    parser.add_argument("command", choices=("write", "check"), help="write: regenerate; check: verify only")
    parser.add_argument(
        "--dir", type=Path, default=SCHEMA_DIR, help="schema directory (default: the package's)"
    )
    arguments = parser.parse_args(argv)
    directory: Path = arguments.dir

    if arguments.command == "write":
        try:
            written = write_schemas(directory)
        except IncompatibleSchemaError as error:
            sys.stderr.write(f"refused: {error}\n")
            return EXIT_REFUSED
        for path in written:
            sys.stdout.write(f"wrote {path}\n")
        sys.stdout.write(f"{len(written)} schema file(s) written; the others are current\n")
        return EXIT_OK

    failing = [status for status in check_schemas(directory) if status.state != "current"]
    for status in failing:
        sys.stderr.write(status.describe() + "\n")
    if failing:
        sys.stderr.write(
            "schemas are not current: run `uv run python -m mailsync.common.contracts.schemas write` "
            "(an incompatible change needs a new v2 model and topic instead)\n"
        )
        return EXIT_CHECK_FAILED
    sys.stdout.write("all contract schemas are current\n")
    return EXIT_OK
