"""Checks a custom resource against its CRD's openAPIV3Schema, as the API server does, with
fields the schema does not declare refused (the API server would drop them silently)."""

from __future__ import annotations

import functools
import json
from typing import Any

import jsonschema


def structural(schema: Any) -> Any:
    """A CRD's openAPIV3Schema as plain JSON schema, refusing fields it does not declare."""
    if isinstance(schema, list):
        return [structural(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: structural(v) for k, v in schema.items() if k not in ("properties", "default")}
    if "properties" in schema:
        out["properties"] = {k: structural(v) for k, v in schema["properties"].items()}
    if schema.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if schema.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    if (
        "properties" in schema
        and "additionalProperties" not in schema
        and not schema.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


def resource_validator(crd_schema: dict[str, Any]) -> jsonschema.protocols.Validator:
    """A validator of whole objects (apiVersion, kind, metadata, spec...) for a CRD's schema."""
    schema = structural(crd_schema)
    schema.setdefault("properties", {}).update(
        {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
        }
    )
    return jsonschema.Draft7Validator(schema)


@functools.lru_cache(maxsize=16)
def _cached_validator(schema_json: str) -> jsonschema.protocols.Validator:
    return resource_validator(json.loads(schema_json))


def field_path(path: Any) -> str:
    """A jsonschema path as the API server writes field names: spec.containers[0].image."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text.lstrip(".")


def deepest(error: jsonschema.ValidationError) -> jsonschema.ValidationError:
    """For anyOf/oneOf (nullable refs, int-or-string) the branch that got furthest."""
    while error.context:
        error = max(error.context, key=lambda e: (len(e.absolute_path), e.validator != "type"))
    return error


def schema_errors(obj: dict[str, Any], crd_schema: dict[str, Any]) -> list[str]:
    """Every problem of `obj` against the CRD schema, each as 'field: message'; [] if valid."""
    validator = _cached_validator(json.dumps(crd_schema, sort_keys=True))
    problems = []
    for error in sorted(validator.iter_errors(obj), key=lambda e: list(map(str, e.path))):
        error = deepest(error)
        problems.append(f"{field_path(error.absolute_path) or '(object)'}: {error.message}")
    return problems
