"""Schema checks: kubernetes-validate (strict) for built-in kinds, the CRD schema for custom ones."""

from __future__ import annotations

import functools
import json
from typing import Any

import jsonschema
import referencing
from kubernetes_validate.utils import schema_contents

from hubflow.jobs.kubeflow.crdschema import deepest, field_path, resource_validator
from tests.kube.sim.errors import ApiError, invalid
from tests.kube.sim.resources import ResourceType

K8S_VERSION = "1.37.0"
_SCHEMA_DIR = f"kubernetes-json-schema/v{K8S_VERSION}-local-strict"


@functools.cache
def _registry() -> referencing.Registry:
    definitions = schema_contents(f"{_SCHEMA_DIR}/_definitions.json", K8S_VERSION)
    return referencing.Resource.from_contents(definitions) @ referencing.Registry()


@functools.cache
def _builtin_validator(kind: str, api_version: str) -> jsonschema.protocols.Validator:
    file = kind.lower() + "-" + api_version.split(".")[0].replace("/", "-")
    if "/" in api_version:
        group, version = api_version.split("/")
        file = f"{kind.lower()}-{group.split('.')[0]}-{version}"
    schema = schema_contents(f"{_SCHEMA_DIR}/{file}.json", K8S_VERSION)
    return jsonschema.Draft202012Validator(schema, registry=_registry())


@functools.cache
def _crd_validator(rtype: ResourceType) -> jsonschema.protocols.Validator:
    return resource_validator(rtype.crd_schema)


def _join(base: str, name: str) -> str:
    return f"{base}.{name}" if base else name


def _causes(error: jsonschema.ValidationError) -> list[dict[str, str]]:
    error = deepest(error)
    field = field_path(error.absolute_path)
    value = error.instance
    if error.validator == "additionalProperties":
        known = set(error.schema.get("properties", {}))
        return [
            {
                "reason": "FieldValueForbidden",
                "field": _join(field, name),
                "message": f'Forbidden: unknown field "{name}"',
            }
            for name in sorted(set(value) - known)
        ]
    if error.validator == "required":
        missing = [name for name in error.validator_value if name not in value]
        return [
            {
                "reason": "FieldValueRequired",
                "field": _join(field, name),
                "message": "Required value",
            }
            for name in missing
        ]
    shown = json.dumps(value)
    if error.validator == "type":
        wanted = error.validator_value
        wanted = [t for t in wanted if t != "null"][0] if isinstance(wanted, list) else wanted
        message = f"Invalid value: {shown}: {field} in body must be of type {wanted}"
        return [{"reason": "FieldValueTypeInvalid", "field": field, "message": message}]
    if error.validator == "enum":
        supported = ", ".join(json.dumps(v) for v in error.validator_value if v is not None)
        message = f"Unsupported value: {shown}: supported values: {supported}"
        return [{"reason": "FieldValueNotSupported", "field": field, "message": message}]
    return [
        {
            "reason": "FieldValueInvalid",
            "field": field,
            "message": f"Invalid value: {shown}: {error.message}",
        }
    ]


def validate(obj: dict[str, Any], rtype: ResourceType) -> None:
    """Raise 422 Invalid naming every offending field, as the API server would."""
    validator = (
        _crd_validator(rtype)
        if rtype.is_custom
        else _builtin_validator(rtype.kind, rtype.api_version)
    )
    causes = [
        cause
        for error in sorted(
            validator.iter_errors(obj), key=lambda e: list(map(str, e.absolute_path))
        )
        for cause in _causes(error)
    ]
    if causes:
        name = obj.get("metadata", {}).get("name") or obj.get("metadata", {}).get(
            "generateName", ""
        )
        raise invalid(rtype.kind, name, rtype.group if rtype.is_custom else "", causes)


def check(obj: dict[str, Any], rtype: ResourceType) -> ApiError | None:
    """validate() returning the error instead of raising it."""
    try:
        validate(obj, rtype)
    except ApiError as error:
        return error
    return None
