"""Generated JSON Schemas of the contracts (committed here as ``*.json``) and their compatibility check.

Run ``python -m mailsync.common.contracts.schemas write`` after changing a model and commit the files;
``... check`` (and the test suite) fail when a committed file is stale or a change is incompatible.
"""

from mailsync.common.contracts.schemas.compatibility import (
    ChangeKind,
    Incompatibility,
    find_incompatibilities,
    is_compatible,
)
from mailsync.common.contracts.schemas.generation import (
    JSON_SCHEMA_DIALECT,
    SCHEMA_DIR,
    SCHEMA_MODE,
    SCHEMA_MODELS,
    IncompatibleSchemaError,
    SchemaStatus,
    check_schemas,
    generate_schema,
    render_schema,
    schema_file_name,
    write_schemas,
)

__all__ = [
    "JSON_SCHEMA_DIALECT",
    "SCHEMA_DIR",
    "SCHEMA_MODE",
    "SCHEMA_MODELS",
    "ChangeKind",
    "Incompatibility",
    "IncompatibleSchemaError",
    "SchemaStatus",
    "check_schemas",
    "find_incompatibilities",
    "generate_schema",
    "is_compatible",
    "render_schema",
    "schema_file_name",
    "write_schemas",
]
