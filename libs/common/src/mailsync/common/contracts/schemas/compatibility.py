"""Backward-compatibility check between a committed JSON Schema and a newly generated one.

The question answered: can a consumer built against the *old* schema keep reading what producers of the
*new* schema publish, and can producers following the old schema keep publishing to consumers of the new
one? Within one major version the answer must be yes, so these changes are reported as incompatible:

* a property removed (old readers and writers still use it);
* a property's type changed, including its ``format`` (``string`` to ``integer``, ``date-time`` to
  ``uuid``, nullable to non-nullable or the reverse);
* a property newly required (old producers do not send it), or a required property made optional (old
  readers rely on it);
* an ``enum`` value removed, or a ``const`` changed (``Literal`` values, ``event_type``);
* a constraint tightened (``maxLength`` lowered, ``minimum`` raised, a ``pattern`` added or changed...),
  since values valid before would now be rejected.

Compatible, by design: a new optional property; an ``enum`` value added (consumers upgrade before
producers start sending it); descriptions, titles and defaults; constraints relaxed.

The walk follows ``$ref`` into ``$defs``, ``anyOf``/``oneOf`` branches (paired by JSON type, object
branches by title), array ``items`` and map ``additionalProperties``. Paths in reports read like
``$.body.text_blob.sha256``; ``[]`` is an array item, ``{}`` a map value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

__all__ = ["ChangeKind", "Incompatibility", "find_incompatibilities", "is_compatible"]

Schema = dict[str, Any]

_UPPER_BOUNDS = ("maxLength", "maxItems", "maxProperties", "maximum", "exclusiveMaximum")
_LOWER_BOUNDS = ("minLength", "minItems", "minProperties", "minimum", "exclusiveMinimum")


class ChangeKind(StrEnum):
    """The kinds of incompatible change."""

    PROPERTY_REMOVED = "property_removed"
    TYPE_CHANGED = "type_changed"
    NEWLY_REQUIRED = "newly_required"
    REQUIRED_MADE_OPTIONAL = "required_made_optional"
    ENUM_VALUE_REMOVED = "enum_value_removed"
    CONST_CHANGED = "const_changed"
    CONSTRAINT_TIGHTENED = "constraint_tightened"


@dataclass(frozen=True)
class Incompatibility:
    """One incompatible change, at a path such as ``$.body.text``."""

    path: str
    kind: ChangeKind
    detail: str

    def __str__(self) -> str:
        return f"{self.path}: {self.kind.value}: {self.detail}"


def find_incompatibilities(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[Incompatibility]:
    """Every incompatible change from ``old`` to ``new`` (both root schemas); empty when compatible."""
    walker = _Walker(dict(old), dict(new))
    walker.compare(dict(old), dict(new), "$")
    return walker.problems


def is_compatible(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """True when ``new`` can replace ``old`` within the same major version."""
    return not find_incompatibilities(old, new)


_JSON_TYPES: tuple[tuple[type, str], ...] = (
    (type(None), "null"),
    (bool, "boolean"),  # before int: a bool is an int in Python
    (int, "integer"),
    (float, "number"),
    (str, "string"),
    (list, "array"),
)


def _json_type(value: object) -> str:
    for python_type, name in _JSON_TYPES:
        if isinstance(value, python_type):
            return name
    return "object"


def _value_key(value: object) -> str:
    return repr(value)


@dataclass
class _Walker:
    old_root: Schema
    new_root: Schema
    problems: list[Incompatibility] = field(default_factory=list)
    _active: set[tuple[str, str]] = field(default_factory=set)

    def report(self, path: str, kind: ChangeKind, detail: str) -> None:
        self.problems.append(Incompatibility(path, kind, detail))

    @staticmethod
    def resolve(node: Schema, root: Schema) -> Schema:
        seen: set[str] = set()
        while "$ref" in node:
            ref = node["$ref"]
            if not isinstance(ref, str) or not ref.startswith("#/") or ref in seen:
                raise ValueError(f"cannot resolve $ref {ref!r}")
            seen.add(ref)
            target: Any = root
            for part in ref[2:].split("/"):
                target = target[part.replace("~1", "/").replace("~0", "~")]
            siblings = {key: value for key, value in node.items() if key != "$ref"}
            node = {**target, **siblings}
        return node

    def branches(self, node: Schema, root: Schema) -> Iterator[Schema]:
        node = self.resolve(node, root)
        alternatives = node.get("anyOf", node.get("oneOf"))
        if isinstance(alternatives, list):
            for alternative in alternatives:
                yield from self.branches(alternative, root)
            return
        declared = node.get("type")
        if isinstance(declared, list):
            for name in declared:
                yield {**node, "type": name}
            return
        yield node

    @staticmethod
    def type_of(branch: Schema) -> str:
        declared = branch.get("type")
        if isinstance(declared, str):
            return declared
        if "const" in branch:
            return _json_type(branch["const"])
        values = branch.get("enum")
        if isinstance(values, list) and values:
            kinds = {_json_type(value) for value in values}
            return kinds.pop() if len(kinds) == 1 else "any"
        if "properties" in branch:
            return "object"
        return "any"

    def compare(self, old: Schema, new: Schema, path: str) -> None:
        guard = (str(old.get("$ref", "")), str(new.get("$ref", "")))
        if guard != ("", "") and guard in self._active:
            return
        if guard != ("", ""):
            self._active.add(guard)
        try:
            self._compare_branches(
                list(self.branches(old, self.old_root)), list(self.branches(new, self.new_root)), path
            )
        finally:
            self._active.discard(guard)

    def _compare_branches(self, old: list[Schema], new: list[Schema], path: str) -> None:
        old_by_type: dict[str, list[Schema]] = {}
        new_by_type: dict[str, list[Schema]] = {}
        for branch in old:
            old_by_type.setdefault(self.type_of(branch), []).append(branch)
        for branch in new:
            new_by_type.setdefault(self.type_of(branch), []).append(branch)
        if set(old_by_type) != set(new_by_type):
            self.report(
                path,
                ChangeKind.TYPE_CHANGED,
                f"type {'|'.join(sorted(old_by_type))} became {'|'.join(sorted(new_by_type))}",
            )
        for kind, old_group in old_by_type.items():
            new_group = new_by_type.get(kind)
            if new_group is None:
                continue
            for old_branch, new_branch in self._pair(old_group, new_group, path):
                self._compare_same_type(old_branch, new_branch, kind, path)

    def _pair(self, old: list[Schema], new: list[Schema], path: str) -> Iterator[tuple[Schema, Schema]]:
        if len(old) == 1 and len(new) == 1:
            yield old[0], new[0]
            return
        new_by_title = {branch.get("title"): branch for branch in new}
        for index, branch in enumerate(old):
            title = branch.get("title")
            if title is not None and title in new_by_title:
                yield branch, new_by_title[title]
            elif title is None and index < len(new):
                yield branch, new[index]
            else:
                self.report(path, ChangeKind.TYPE_CHANGED, f"alternative {title or index} was removed")

    def _compare_same_type(self, old: Schema, new: Schema, kind: str, path: str) -> None:
        self._compare_values(old, new, path)
        if old.get("format") != new.get("format"):
            self.report(
                path, ChangeKind.TYPE_CHANGED, f"format {old.get('format')!r} became {new.get('format')!r}"
            )
        self._compare_constraints(old, new, path)
        if kind == "object":
            self._compare_object(old, new, path)
        elif kind == "array" and isinstance(old.get("items"), dict) and isinstance(new.get("items"), dict):
            self.compare(old["items"], new["items"], f"{path}[]")

    def _compare_values(self, old: Schema, new: Schema, path: str) -> None:
        if "const" in old:
            if "const" not in new or new["const"] != old["const"]:
                shown = repr(new["const"]) if "const" in new else "no longer fixed"
                self.report(path, ChangeKind.CONST_CHANGED, f"const {old['const']!r} became {shown}")
            return
        old_values = old.get("enum")
        new_values = new["enum"] if "enum" in new else ([new["const"]] if "const" in new else None)
        if isinstance(old_values, list):
            if new_values is None:
                return
            kept = {_value_key(value) for value in new_values}
            for value in old_values:
                if _value_key(value) not in kept:
                    self.report(path, ChangeKind.ENUM_VALUE_REMOVED, f"enum value {value!r} was removed")
        elif new_values is not None:
            self.report(path, ChangeKind.CONSTRAINT_TIGHTENED, f"values newly restricted to {new_values!r}")

    def _compare_constraints(self, old: Schema, new: Schema, path: str) -> None:
        for name in _UPPER_BOUNDS:
            if name in new and (name not in old or new[name] < old[name]):
                self.report(
                    path, ChangeKind.CONSTRAINT_TIGHTENED, f"{name} {old.get(name)} became {new[name]}"
                )
        for name in _LOWER_BOUNDS:
            if name in new and (name not in old or new[name] > old[name]):
                self.report(
                    path, ChangeKind.CONSTRAINT_TIGHTENED, f"{name} {old.get(name)} became {new[name]}"
                )
        if "pattern" in new and new["pattern"] != old.get("pattern"):
            self.report(
                path,
                ChangeKind.CONSTRAINT_TIGHTENED,
                f"pattern {old.get('pattern')!r} became {new['pattern']!r}",
            )

    def _compare_object(self, old: Schema, new: Schema, path: str) -> None:
        old_properties: dict[str, Schema] = old.get("properties", {})
        new_properties: dict[str, Schema] = new.get("properties", {})
        old_required = set(old.get("required", []))
        new_required = set(new.get("required", []))
        for name, old_property in old_properties.items():
            child = f"{path}.{name}"
            if name not in new_properties:
                self.report(child, ChangeKind.PROPERTY_REMOVED, "property was removed")
                continue
            self.compare(old_property, new_properties[name], child)
        for name in sorted(new_required - old_required):
            detail = (
                "optional property became required" if name in old_properties else "new required property"
            )
            self.report(f"{path}.{name}", ChangeKind.NEWLY_REQUIRED, detail)
        for name in sorted(old_required - new_required):
            if name in new_properties:
                self.report(
                    f"{path}.{name}", ChangeKind.REQUIRED_MADE_OPTIONAL, "required property became optional"
                )
        old_extra = old.get("additionalProperties")
        new_extra = new.get("additionalProperties")
        if isinstance(old_extra, dict) and isinstance(new_extra, dict):
            self.compare(old_extra, new_extra, f"{path}{{}}")
        elif new_extra is False and old_extra is not False:
            self.report(path, ChangeKind.CONSTRAINT_TIGHTENED, "additional properties are no longer allowed")
