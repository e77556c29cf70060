"""`docs/contracts.md`: the public contract as a page, rendered from the contract registry.

The page lists every topic with its key, producers, consumers and models (linked to their committed JSON
Schemas), the dead-letter convention, and the reason codes of results and skips. It is generated so it
cannot drift from the code:

    python -m mailsync.common.contracts.catalog write   # regenerate docs/contracts.md
    python -m mailsync.common.contracts.catalog check   # exit 1 if the committed page is stale
"""

from __future__ import annotations

import sys
from pathlib import Path

from mailsync.common.contracts.conversations import NotSyncedReason
from mailsync.common.contracts.schemas.generation import schema_file_name
from mailsync.common.contracts.sending import SendFailureReason
from mailsync.common.contracts.topics import CONTRACTS, DEAD_LETTER_MODEL

PAGE = Path("docs/contracts.md")
_SCHEMAS = "../libs/common/src/mailsync/common/contracts/schemas"

_INTRO = """\
# The public contract

Generated from `mailsync.common.contracts` by `make docs`; do not edit by hand.

Every record is JSON (`content-type: application/json`, header `event-type` naming the model). Every event
and command carries `event_id` (UUID), `event_type`, `schema_version` and `occurred_at` (UTC). Readers must
ignore fields they do not know: new optional fields and new enum values are compatible changes; anything
else needs a new model version and a new topic (`.v2`). `make check` fails on an incompatible change to a
committed schema. Delivery is at least once: consumers deduplicate by `event_id` (deterministic where a
redelivery can repeat an event) or by the natural key named below.
"""


def render() -> str:
    """The page's Markdown."""
    lines = [
        _INTRO,
        "## Topics",
        "",
        "| topic | key | producers | consumers | models | purpose |",
        "|" + " --- |" * 6,
    ]
    for contract in CONTRACTS:
        models = ", ".join(f"[{m.__name__}]({_SCHEMAS}/{schema_file_name(m)})" for m in contract.models)
        lines.append(
            f"| `{contract.topic}` | `{contract.key}` | {', '.join(contract.producers)} | "
            f"{', '.join(contract.consumers)} | {models} | {contract.purpose} |"
        )
    lines += [
        "",
        "## Dead letters",
        "",
        (
            "Every topic `T` has a dead-letter topic `T.dlt`, keyed like `T`, carrying "
            f"[{DEAD_LETTER_MODEL.__name__}]({_SCHEMAS}/{schema_file_name(DEAD_LETTER_MODEL)}): the original "
            "bytes, where they came from, and why they could not be processed (see operations.md for replay)."
        ),
        "",
        "## Why a send was not sent (`SendCompleted.reason`)",
        "",
        *(f"- `{reason.value}`" for reason in SendFailureReason),
        "",
        "## Why a message was not synced (`MessageNotSynced.reason`)",
        "",
        *(f"- `{reason.value}`" for reason in NotSyncedReason),
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """`write` or `check` the page; returns the exit status."""
    action = (argv if argv is not None else sys.argv[1:] or ["check"])[0]
    text = render()
    if action == "write":
        PAGE.write_text(text, encoding="utf-8")
        return 0
    if not PAGE.exists() or PAGE.read_text(encoding="utf-8") != text:
        sys.stderr.write(f"{PAGE} is stale: run `make docs`\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
