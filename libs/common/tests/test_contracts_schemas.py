"""Committed JSON Schemas: current, matching the examples, and guarded by the compatibility checker."""

from __future__ import annotations

import copy
import json
import shutil
from typing import TYPE_CHECKING, Any

import pytest
from jsonschema import Draft202012Validator

from mailsync.common.contracts import Event, SendEmail
from mailsync.common.contracts.examples import EXAMPLES
from mailsync.common.contracts.schemas import (
    SCHEMA_DIR,
    SCHEMA_MODE,
    SCHEMA_MODELS,
    ChangeKind,
    IncompatibleSchemaError,
    check_schemas,
    find_incompatibilities,
    generate_schema,
    is_compatible,
    render_schema,
    schema_file_name,
    write_schemas,
)
from mailsync.common.contracts.schemas.cli import main

if TYPE_CHECKING:
    from pathlib import Path


def _committed(model: type[Event]) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((SCHEMA_DIR / schema_file_name(model)).read_text(encoding="utf-8"))
    return loaded


# --- committed files ------------------------------------------------------------------------------------


def test_committed_schemas_are_current() -> None:
    stale = [status.describe() for status in check_schemas() if status.state != "current"]
    assert not stale, "run `uv run python -m mailsync.common.contracts.schemas write`:\n" + "\n".join(stale)


def test_every_contract_model_has_a_schema_and_an_example() -> None:
    example_types = {type(event) for event in EXAMPLES}
    for model in SCHEMA_MODELS:
        assert (SCHEMA_DIR / schema_file_name(model)).is_file(), model
        assert model in example_types, f"{model.__name__} has no example"


def _concrete_events(base: type[Event]) -> set[type[Event]]:
    found: set[type[Event]] = set()
    for subclass in base.__subclasses__():
        found.add(subclass)
        found |= _concrete_events(subclass)
    return found


def test_every_event_subclass_in_the_package_is_registered() -> None:
    in_package = {
        model
        for model in _concrete_events(Event)
        if model.__module__.startswith("mailsync.common.contracts.")
    }
    assert in_package == set(SCHEMA_MODELS)


def test_schema_files_are_named_after_event_type_and_version() -> None:
    names = sorted(path.name for path in SCHEMA_DIR.glob("*.json"))
    assert names == sorted(f"{model.contract_name()}.v1.json" for model in SCHEMA_MODELS)
    assert "sending.send_email.v1.json" in names


@pytest.mark.parametrize("model", SCHEMA_MODELS, ids=lambda model: model.__name__)
def test_committed_schema_is_a_valid_draft_2020_12_schema(model: type[Event]) -> None:
    Draft202012Validator.check_schema(_committed(model))


@pytest.mark.parametrize(
    "event", EXAMPLES, ids=lambda event: f"{type(event).__name__}-{str(event.event_id)[-2:]}"
)
def test_every_example_validates_against_its_committed_schema(event: Event) -> None:
    validator = Draft202012Validator(_committed(type(event)))
    errors = [error.message for error in validator.iter_errors(json.loads(event.model_dump_json()))]
    assert not errors


def test_committed_schema_rejects_what_the_model_rejects() -> None:
    validator = Draft202012Validator(_committed(SendEmail))
    document = json.loads(EXAMPLES[4].model_dump_json())
    assert isinstance(EXAMPLES[4], SendEmail)
    document["request_id"] = "has space"
    assert not validator.is_valid(document)


def test_envelope_fields_are_required_in_every_schema() -> None:
    for model in SCHEMA_MODELS:
        required = set(_committed(model)["required"])
        assert {"event_id", "event_type", "schema_version", "occurred_at"} <= required, model


def test_every_property_is_documented() -> None:
    def walk(node: Any, path: str) -> list[str]:
        undocumented: list[str] = []
        if isinstance(node, dict):
            for name, child in node.get("properties", {}).items():
                if "description" not in child:
                    undocumented.append(f"{path}.{name}")
            for key, child in node.items():
                undocumented += walk(child, f"{path}/{key}")
        return undocumented

    for model in SCHEMA_MODELS:
        assert not walk(_committed(model), model.__name__)


def test_schemas_use_wire_names_and_validation_mode() -> None:
    assert SCHEMA_MODE == "validation"
    properties = _committed(SCHEMA_MODELS[1])["properties"]
    assert "from" in properties
    assert "from_" not in properties
    assert "subject" not in _committed(SCHEMA_MODELS[1])["required"], "defaulted fields are optional"


def test_rendering_is_stable() -> None:
    for model in SCHEMA_MODELS:
        text = render_schema(generate_schema(model))
        assert text.endswith("}\n")
        assert text == render_schema(json.loads(text))


# --- write / check and the command line ---------------------------------------------------------------


@pytest.fixture
def schema_copy(tmp_path: Path) -> Path:
    for path in SCHEMA_DIR.glob("*.json"):
        shutil.copy(path, tmp_path / path.name)
    return tmp_path


def _edit(directory: Path, model: type[Event], change: Any) -> None:
    path = directory / schema_file_name(model)
    schema = json.loads(path.read_text(encoding="utf-8"))
    change(schema)
    path.write_text(render_schema(schema), encoding="utf-8")


def test_check_passes_and_write_is_a_no_op_on_current_files(schema_copy: Path) -> None:
    assert main(["check", "--dir", str(schema_copy)]) == 0
    assert write_schemas(schema_copy) == []


def test_check_fails_on_a_missing_file(schema_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (schema_copy / schema_file_name(SendEmail)).unlink()
    assert main(["check", "--dir", str(schema_copy)]) == 1
    assert "sending.send_email.v1.json: missing" in capsys.readouterr().err


def test_check_fails_on_a_stale_file_and_write_repairs_it(schema_copy: Path) -> None:
    _edit(schema_copy, SendEmail, lambda schema: schema.update(description="outdated"))
    assert main(["check", "--dir", str(schema_copy)]) == 1
    assert main(["write", "--dir", str(schema_copy)]) == 0
    assert main(["check", "--dir", str(schema_copy)]) == 0


def test_write_adds_a_new_optional_field_to_the_committed_schema(schema_copy: Path) -> None:
    """A committed schema lacking an optional field the model now has: compatible, so write proceeds."""
    _edit(schema_copy, SendEmail, lambda schema: schema["properties"].pop("contact_id"))
    statuses = {status.path.name: status for status in check_schemas(schema_copy)}
    assert statuses["sending.send_email.v1.json"].state == "stale"
    assert write_schemas(schema_copy) == [schema_copy / "sending.send_email.v1.json"]


def test_write_refuses_an_incompatible_change(schema_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The committed schema has a property the model lost: the model change is breaking."""
    original = (schema_copy / schema_file_name(SendEmail)).read_text(encoding="utf-8")

    def add_property(schema: dict[str, Any]) -> None:
        schema["properties"]["priority"] = {"type": "string", "description": "gone from the model"}

    _edit(schema_copy, SendEmail, add_property)
    edited = (schema_copy / schema_file_name(SendEmail)).read_text(encoding="utf-8")
    assert main(["write", "--dir", str(schema_copy)]) == 2
    err = capsys.readouterr().err
    assert "$.priority: property_removed" in err
    assert "new model" in err
    assert (schema_copy / schema_file_name(SendEmail)).read_text(encoding="utf-8") == edited != original
    assert main(["check", "--dir", str(schema_copy)]) == 1


def test_write_refuses_when_a_schema_lost_its_model(schema_copy: Path) -> None:
    (schema_copy / "mail.retired_event.v1.json").write_text("{}\n", encoding="utf-8")
    with pytest.raises(IncompatibleSchemaError, match="orphaned"):
        write_schemas(schema_copy)


# --- the compatibility checker on synthetic schemas -----------------------------------------------------

BASE: dict[str, Any] = {
    "$defs": {
        "Kind": {"enum": ["a", "b"], "title": "Kind", "type": "string"},
        "Part": {
            "properties": {"size": {"type": "integer", "minimum": 0}, "name": {"type": "string"}},
            "required": ["size"],
            "title": "Part",
            "type": "object",
        },
    },
    "properties": {
        "id": {"type": "string", "maxLength": 100},
        "kind": {"$ref": "#/$defs/Kind"},
        "event_type": {"const": "x.happened", "type": "string"},
        "note": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None},
        "parts": {"items": {"$ref": "#/$defs/Part"}, "type": "array"},
        "main": {"anyOf": [{"$ref": "#/$defs/Part"}, {"type": "null"}], "default": None},
        "labels": {"additionalProperties": {"type": "string"}, "type": "object"},
    },
    "required": ["id", "kind", "event_type"],
    "type": "object",
}


def _changed(change: Any) -> dict[str, Any]:
    schema = copy.deepcopy(BASE)
    change(schema)
    return schema


def _kinds(new: dict[str, Any]) -> list[tuple[str, ChangeKind]]:
    return [(problem.path, problem.kind) for problem in find_incompatibilities(BASE, new)]


def test_identical_schemas_are_compatible() -> None:
    assert is_compatible(BASE, copy.deepcopy(BASE))


def test_new_optional_property_is_compatible() -> None:
    assert is_compatible(BASE, _changed(lambda s: s["properties"].update(extra={"type": "string"})))


def test_new_optional_nested_property_is_compatible() -> None:
    new = _changed(lambda s: s["$defs"]["Part"]["properties"].update(sha={"type": "string"}))
    assert is_compatible(BASE, new)


def test_enum_value_added_is_compatible() -> None:
    assert is_compatible(BASE, _changed(lambda s: s["$defs"]["Kind"].update(enum=["a", "b", "c"])))


def test_descriptions_and_relaxed_constraints_are_compatible() -> None:
    def change(schema: dict[str, Any]) -> None:
        schema["properties"]["id"].update(maxLength=200, description="now documented")
        schema["$defs"]["Part"]["title"] = "Part"

    assert is_compatible(BASE, _changed(change))


def test_removed_property_is_incompatible() -> None:
    assert _kinds(_changed(lambda s: s["properties"].pop("note"))) == [
        ("$.note", ChangeKind.PROPERTY_REMOVED)
    ]


def test_removed_nested_property_is_found_through_ref_and_items() -> None:
    kinds = _kinds(_changed(lambda s: s["$defs"]["Part"]["properties"].pop("name")))
    assert ("$.parts[].name", ChangeKind.PROPERTY_REMOVED) in kinds
    assert ("$.main.name", ChangeKind.PROPERTY_REMOVED) in kinds


def test_type_change_is_incompatible() -> None:
    new = _changed(lambda s: s["properties"].update(id={"type": "integer"}))
    assert _kinds(new) == [("$.id", ChangeKind.TYPE_CHANGED)]


def test_type_change_inside_any_of_and_items_is_incompatible() -> None:
    new = _changed(lambda s: s["$defs"]["Part"]["properties"].update(size={"type": "string"}))
    kinds = _kinds(new)
    assert ("$.parts[].size", ChangeKind.TYPE_CHANGED) in kinds
    assert ("$.main.size", ChangeKind.TYPE_CHANGED) in kinds


def test_nullable_made_non_nullable_is_incompatible() -> None:
    new = _changed(lambda s: s["properties"].update(note={"type": "string"}))
    assert _kinds(new) == [("$.note", ChangeKind.TYPE_CHANGED)]


def test_format_change_is_a_type_change() -> None:
    def change(schema: dict[str, Any]) -> None:
        schema["properties"]["id"]["format"] = "uuid"

    assert ("$.id", ChangeKind.TYPE_CHANGED) in _kinds(_changed(change))


def test_map_value_type_change_is_incompatible() -> None:
    new = _changed(lambda s: s["properties"]["labels"].update(additionalProperties={"type": "integer"}))
    assert _kinds(new) == [("$.labels{}", ChangeKind.TYPE_CHANGED)]


def test_new_required_property_is_incompatible() -> None:
    def change(schema: dict[str, Any]) -> None:
        schema["properties"]["tenant"] = {"type": "string"}
        schema["required"].append("tenant")

    assert _kinds(_changed(change)) == [("$.tenant", ChangeKind.NEWLY_REQUIRED)]


def test_optional_property_made_required_is_incompatible() -> None:
    assert _kinds(_changed(lambda s: s["required"].append("note"))) == [("$.note", ChangeKind.NEWLY_REQUIRED)]


def test_required_property_made_optional_is_incompatible() -> None:
    new = _changed(lambda s: s["required"].remove("id"))
    assert _kinds(new) == [("$.id", ChangeKind.REQUIRED_MADE_OPTIONAL)]


def test_enum_value_removed_is_incompatible() -> None:
    new = _changed(lambda s: s["$defs"]["Kind"].update(enum=["a"]))
    assert _kinds(new) == [("$.kind", ChangeKind.ENUM_VALUE_REMOVED)]


def test_const_change_is_incompatible() -> None:
    new = _changed(lambda s: s["properties"]["event_type"].update(const="x.renamed"))
    assert _kinds(new) == [("$.event_type", ChangeKind.CONST_CHANGED)]


def test_tightened_constraints_are_incompatible() -> None:
    def change(schema: dict[str, Any]) -> None:
        schema["properties"]["id"]["maxLength"] = 10
        schema["properties"]["id"]["pattern"] = "^[a-z]+$"
        schema["$defs"]["Part"]["properties"]["size"]["minimum"] = 1

    kinds = _kinds(_changed(change))
    assert kinds.count(("$.id", ChangeKind.CONSTRAINT_TIGHTENED)) == 2
    assert ("$.parts[].size", ChangeKind.CONSTRAINT_TIGHTENED) in kinds


def test_every_change_kind_is_covered_above() -> None:
    exercised = {
        ChangeKind.PROPERTY_REMOVED,
        ChangeKind.TYPE_CHANGED,
        ChangeKind.NEWLY_REQUIRED,
        ChangeKind.REQUIRED_MADE_OPTIONAL,
        ChangeKind.ENUM_VALUE_REMOVED,
        ChangeKind.CONST_CHANGED,
        ChangeKind.CONSTRAINT_TIGHTENED,
    }
    assert exercised == set(ChangeKind)


def test_real_model_change_is_caught() -> None:
    """A field dropped from a real contract (SendEmail.subject) is reported against its committed schema."""
    generated = generate_schema(SendEmail)
    generated["properties"].pop("subject")
    generated["required"].remove("subject")
    kinds = [
        (problem.path, problem.kind) for problem in find_incompatibilities(_committed(SendEmail), generated)
    ]
    assert ("$.subject", ChangeKind.PROPERTY_REMOVED) in kinds
