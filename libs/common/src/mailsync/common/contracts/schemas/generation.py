"""JSON Schemas generated from the contract models, committed next to this module.

One file per contract: ``<event_type>.v<schema_version>.json`` (e.g. ``mail.message_ingested.v1.json``),
JSON with sorted keys, 2-space indent and a trailing newline, so diffs are reviewable and generation is
reproducible.

Schema mode: **validation**. The committed schema describes what a reader accepts, which is what another
team must produce (a ``SendEmail``, a directory event) and what an analytics consumer may rely on.
Fields with a default are optional in it, so adding an optional field is a compatible change; the
"serialization" mode would mark every defaulted field required and turn each new optional field into a
"new required property" break. The envelope fields (``event_id``, ``event_type``, ``schema_version``,
``occurred_at``) are the exception: ``Event`` marks them required, because producers must always send
them. JSON names are the aliases (``from``), i.e. what is on the wire.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

from mailsync.common.contracts.schemas.compatibility import Incompatibility, find_incompatibilities
from mailsync.common.contracts.topics import CONTRACTS, DEAD_LETTER_MODEL

if TYPE_CHECKING:
    from collections.abc import Iterable

    from mailsync.common.contracts.base import Event

__all__ = [
    "JSON_SCHEMA_DIALECT",
    "SCHEMA_DIR",
    "SCHEMA_MODE",
    "SCHEMA_MODELS",
    "IncompatibleSchemaError",
    "SchemaStatus",
    "check_schemas",
    "generate_schema",
    "render_schema",
    "schema_file_name",
    "write_schemas",
]

SCHEMA_MODE: Final = "validation"
JSON_SCHEMA_DIALECT: Final = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_DIR: Final = Path(__file__).parent
"""Where the committed schema files live (this package's directory)."""


def _schema_models() -> tuple[type[Event], ...]:
    models: list[type[Event]] = []
    for contract in CONTRACTS:
        models.extend(model for model in contract.models if model not in models)
    models.append(DEAD_LETTER_MODEL)
    return tuple(models)


SCHEMA_MODELS: Final = _schema_models()
"""Every contract model with a committed schema: each topic's models, then ``DeadLettered``."""


def schema_file_name(model: type[Event]) -> str:
    """``<event_type>.v<schema_version>.json``."""
    return f"{model.contract_name()}.v{model.contract_version()}.json"


def generate_schema(model: type[Event]) -> dict[str, Any]:
    """The JSON Schema of ``model`` (validation mode, JSON names), with ``$schema`` and ``$id``."""
    schema = model.model_json_schema(by_alias=True, mode=SCHEMA_MODE)
    identity = f"urn:mailsync:contract:{model.contract_name()}:v{model.contract_version()}"
    return {"$schema": JSON_SCHEMA_DIALECT, "$id": identity, **schema}


def render_schema(schema: dict[str, Any]) -> str:
    """The committed text of ``schema``: sorted keys, 2-space indent, trailing newline."""
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


SchemaState = Literal["current", "missing", "stale", "incompatible", "orphaned"]


@dataclass(frozen=True)
class SchemaStatus:
    """How one committed schema file compares to what the code generates."""

    path: Path
    state: SchemaState
    problems: tuple[Incompatibility, ...] = ()

    def describe(self) -> str:
        """One line per fact, for the command line."""
        lines = [f"{self.path.name}: {self.state}"]
        lines.extend(f"  {problem}" for problem in self.problems)
        return "\n".join(lines)


def check_schemas(
    directory: Path = SCHEMA_DIR, models: Iterable[type[Event]] = SCHEMA_MODELS
) -> list[SchemaStatus]:
    """Compare every model's generated schema with its committed file, and list files without a model."""
    statuses: list[SchemaStatus] = []
    expected: set[str] = set()
    for model in models:
        path = directory / schema_file_name(model)
        expected.add(path.name)
        generated = generate_schema(model)
        if not path.exists():
            statuses.append(SchemaStatus(path, "missing"))
            continue
        committed_text = path.read_text(encoding="utf-8")
        if committed_text == render_schema(generated):
            statuses.append(SchemaStatus(path, "current"))
            continue
        problems = tuple(find_incompatibilities(json.loads(committed_text), generated))
        statuses.append(SchemaStatus(path, "incompatible" if problems else "stale", problems))
    statuses.extend(
        SchemaStatus(path, "orphaned")
        for path in sorted(directory.glob("*.json"))
        if path.name not in expected
    )
    return statuses


class IncompatibleSchemaError(Exception):
    """Generated schemas break compatibility with the committed ones; nothing was written."""

    def __init__(self, statuses: list[SchemaStatus]) -> None:
        self.statuses = statuses
        report = "\n".join(status.describe() for status in statuses)
        super().__init__(
            "incompatible contract change; a breaking change needs a new model (schema_version 2) on a new "
            f"topic (.v2), published alongside v1 until consumers have moved:\n{report}"
        )


def write_schemas(directory: Path = SCHEMA_DIR, models: Iterable[type[Event]] = SCHEMA_MODELS) -> list[Path]:
    """Write missing and stale schema files; return the paths written.

    All or nothing: raises ``IncompatibleSchemaError`` without writing anything when any change is
    incompatible or a committed schema lost its model (removing a contract is a breaking change too;
    delete such a file by hand once the contract is retired).
    """
    models = tuple(models)
    statuses = check_schemas(directory, models)
    refused = [status for status in statuses if status.state in {"incompatible", "orphaned"}]
    if refused:
        raise IncompatibleSchemaError(refused)
    by_name = {schema_file_name(model): model for model in models}
    written: list[Path] = []
    for status in statuses:
        if status.state in {"missing", "stale"}:
            status.path.write_text(
                render_schema(generate_schema(by_name[status.path.name])), encoding="utf-8"
            )
            written.append(status.path)
    return written
