"""Validation against schema.json, with errors in plain words pointing at the field."""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from .errors import Path, Problem

SCHEMA: dict[str, Any] = json.loads(
    resources.files(__package__).joinpath("schema.json").read_text(encoding="utf-8")
)
_TYPE_WORDS = {
    "integer": "an integer",
    "number": "a number",
    "string": "a string",
    "boolean": "true or false",
    "object": "a mapping",
    "array": "a list",
    "null": "empty",
}


@cache
def _validator(definition: str) -> Draft202012Validator:
    return Draft202012Validator({"$defs": SCHEMA["$defs"], "$ref": f"#/$defs/{definition}"})


def check(instance: object, definition: str) -> None:
    """Validate instance against ``$defs/<definition>``; raise the first Problem in file order."""
    first: tuple[tuple[int, ...], Problem] | None = None
    for error in _validator(definition).iter_errors(instance):
        problem = _problem(error)
        # a missing field is reported after problems inside its parent's present fields
        position = _position(instance, problem.path) + (
            (1 << 30,) if error.validator == "required" else ()
        )
        if first is None or position < first[0]:
            first = (position, problem)
    if first:
        raise first[1]


def _position(instance: object, path: Path) -> tuple[int, ...]:
    """Where a path lies in the document, so the first problem in the file is reported."""
    position = []
    node = instance
    for part in path:
        if isinstance(node, Mapping):
            keys = list(node)
            position.append(keys.index(part) if part in keys else len(keys))
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            position.append(part)
            node = node[part]
        else:
            break
    return tuple(position)


def _resolve(schema: Mapping[str, Any]) -> Mapping[str, Any]:
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        return _resolve(SCHEMA["$defs"][ref.removeprefix("#/$defs/")])
    return schema


def _types(schema: Mapping[str, Any]) -> set[str]:
    kind = schema.get("type")
    return set(kind) if isinstance(kind, list) else {kind} if kind else set()


def expected(schema: Mapping[str, Any]) -> str:
    """What a schema asks for, in words: "an integer ≥ 1", "a range {min, max, step, default}"."""
    schema = _resolve(schema)
    if "title" in schema:
        return str(schema["title"])
    if "anyOf" in schema:
        return " or ".join(expected(branch) for branch in schema["anyOf"])
    words = " or ".join(_TYPE_WORDS[kind] for kind in sorted(_types(schema))) or "a value"
    for keyword, sign in (("minimum", "≥"), ("exclusiveMinimum", ">"), ("maximum", "≤")):
        if keyword in schema:
            words += f" {sign} {schema[keyword]}"
    return words


def _json_type(value: object) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object" if isinstance(value, Mapping) else "null"


def _problem(error: ValidationError) -> Problem:
    path = tuple(error.absolute_path)
    kind = error.validator
    value = error.validator_value
    if "propertyNames" in error.absolute_schema_path:
        rule = str(error.schema.get("description") or f"matching {error.schema.get('pattern')}")
        if kind == "minLength":
            rule = "not empty"
        rule = rule[0].lower() + rule[1:].rstrip(".")
        if isinstance(error.instance, bool):
            rule += "; YAML reads yes/no/on/off as true/false, quote the name"
        return Problem(
            (*path, error.instance), f"invalid name '{error.instance}' (allowed: {rule})"
        )
    if kind in ("anyOf", "oneOf"):
        return _alternatives(error)
    if kind == "additionalProperties":
        allowed = set(error.schema.get("properties", {}))
        field = next(key for key in error.instance if key not in allowed)
        return Problem((*path, field), f"unknown field '{field}'")
    if kind == "required":
        field = next(name for name in value if name not in error.instance)
        return Problem(path, f"missing required field '{field}'")
    if kind in ("type", "minimum", "exclusiveMinimum", "maximum"):
        return Problem(path, f"must be {expected(error.schema)}")
    if kind == "enum":
        choices = ", ".join(str(choice) for choice in value)
        return Problem(path, f"must be one of: {choices} (got {error.instance!r})")
    if kind == "pattern":
        rule = error.schema.get("title") or f"a string matching {value}"
        return Problem(path, f"must be {rule} (got {error.instance!r})")
    if kind in ("minLength", "minItems", "minProperties"):
        return Problem(path, "must not be empty")
    if kind == "maxLength":
        return Problem(path, f"must be at most {value} characters")
    if kind == "uniqueItems":
        return Problem(path, "must not repeat a value")
    return Problem(path, error.message)


def _alternatives(error: ValidationError) -> Problem:
    """An anyOf error: explain the branch of the value's own type, else list the alternatives."""
    kind = _json_type(error.instance)
    kinds = {kind, "number"} if kind == "integer" else {kind}
    branches = error.schema[error.validator]
    fitting = [i for i, branch in enumerate(branches) if kinds & _types(_resolve(branch))]
    if len(fitting) == 1:
        inner = [e for e in error.context or () if e.relative_schema_path[0] == fitting[0]]
        if inner:
            return _problem(inner[0])
    return Problem(tuple(error.absolute_path), f"must be {expected(error.schema)}")
