"""Label and field selectors in their query-string form, as the API server parses them."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from tests.kube.sim.errors import bad_request

Obj = dict[str, Any]
Matcher = Callable[[Obj], bool]

_SET_RE = re.compile(r"^\s*(!?)\s*([^\s!=<>,()]+)\s*(?:(notin|in)\s*\(([^)]*)\))?\s*$")
_EQ_RE = re.compile(r"^\s*([^\s!=<>,()]+)\s*(==|=|!=)\s*([^\s!=<>,()]*)\s*$")

#: Field selectors each kind supports beyond metadata.name and metadata.namespace.
FIELD_SELECTORS = {
    "Pod": {"spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName",
            "spec.hostNetwork", "status.phase", "status.podIP", "status.nominatedNodeName"},
    "Event": {"involvedObject.kind", "involvedObject.namespace", "involvedObject.name",
              "involvedObject.uid", "involvedObject.apiVersion", "involvedObject.resourceVersion",
              "involvedObject.fieldPath", "reason", "reportingComponent", "source", "type"},
    "Secret": {"type"},
    "Namespace": {"status.phase"},
    "Node": {"spec.unschedulable"},
    "PersistentVolumeClaim": {"status.phase"},
}  # fmt: skip


def _split_terms(text: str) -> list[str]:
    """Split on commas that are not inside parentheses."""
    terms, depth, current = [], 0, ""
    for char in text:
        depth += char == "("
        depth -= char == ")"
        if char == "," and depth == 0:
            terms.append(current)
            current = ""
        else:
            current += char
    terms.append(current)
    return [t for t in terms if t.strip()]


def _label_term(term: str) -> Matcher:
    eq = _EQ_RE.match(term)
    if eq:
        key, op, value = eq.groups()
        if op == "!=":
            return lambda labels: labels.get(key) != value
        return lambda labels: labels.get(key) == value
    found = _SET_RE.match(term)
    if not found:
        raise bad_request(
            f"unable to parse requirement: found '{term}', expected: a valid label selector"
        )
    negate, key, op, values_text = found.groups()
    if op:
        if negate:
            raise bad_request(f"unable to parse requirement: {term}")
        values = {v.strip() for v in values_text.split(",") if v.strip()}
        if op == "in":
            return lambda labels: labels.get(key) in values
        return lambda labels: labels.get(key) not in values
    if negate:
        return lambda labels: key not in labels
    return lambda labels: key in labels


def label_selector(text: str | None) -> Matcher:
    """A matcher on whole objects for `labelSelector` (=, ==, !=, in, notin, exists, !exists)."""
    terms = [_label_term(t) for t in _split_terms(text or "")]
    return lambda obj: all(term(obj.get("metadata", {}).get("labels") or {}) for term in terms)


def field_value(obj: Obj, path: str) -> str:
    """The string form of a dotted field (missing fields read as "")."""
    value: Any = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if isinstance(value, bool):
        return str(value).lower()
    return "" if value is None else str(value)


def field_selector(text: str | None, kind: str) -> Matcher:
    """A matcher for `fieldSelector` (=, ==, != on the fields `kind` supports)."""
    allowed = {"metadata.name", "metadata.namespace"} | FIELD_SELECTORS.get(kind, set())
    checks: list[tuple[str, bool, str]] = []
    for term in _split_terms(text or ""):
        eq = _EQ_RE.match(term)
        if not eq:
            raise bad_request(f"invalid selector: '{text}'; can't understand '{term}'")
        path, op, value = eq.groups()
        if path not in allowed:
            raise bad_request(f"field label not supported: {path}")
        checks.append((path, op != "!=", value))
    return lambda obj: all(
        (field_value(obj, path) == value) == equal for path, equal, value in checks
    )
