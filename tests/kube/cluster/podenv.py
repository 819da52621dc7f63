"""A container's environment: env, valueFrom (fieldRef, secretKeyRef, configMapKeyRef), envFrom."""

from __future__ import annotations

import base64
import re
from typing import Any, Protocol

Obj = dict[str, Any]
_VAR_REF = re.compile(r"\$\$|\$\(([-._a-zA-Z][-._a-zA-Z0-9]*)\)")


class Store(Protocol):
    """Where the objects a pod refers to are read: get("/secrets", namespace, name)."""

    def get(self, key: str, namespace: str, name: str) -> Obj | None: ...


class ConfigError(Exception):
    """The container cannot be configured (CreateContainerConfigError)."""


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes $(VAR) expansion: known variables expand, $$ escapes, others stay as written."""

    def replace(found: re.Match[str]) -> str:
        if found.group(0) == "$$":
            return "$"
        return env.get(found.group(1), found.group(0))

    return _VAR_REF.sub(replace, text)


def _field_ref(pod: Obj, path: str) -> str:
    meta = pod["metadata"]
    labelled = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path)
    if labelled:
        return (meta.get(labelled.group(1)) or {}).get(labelled.group(2), "")
    values = {
        "metadata.name": meta["name"], "metadata.namespace": meta["namespace"], "metadata.uid": meta["uid"],
        "spec.nodeName": pod["spec"].get("nodeName", ""), "spec.serviceAccountName": pod["spec"].get("serviceAccountName", ""),
        "status.podIP": pod["status"].get("podIP", ""), "status.podIPs": pod["status"].get("podIP", ""),
        "status.hostIP": pod["status"].get("hostIP", ""), "status.hostIPs": pod["status"].get("hostIP", ""),
    }  # fmt: skip
    return values.get(path, "")


def _lookup(store: Store, namespace: str, ref: Obj, secret: bool) -> dict[str, str] | None:
    kind = "secret" if secret else "configmap"
    found = store.get("/secrets" if secret else "/configmaps", namespace, ref.get("name", ""))
    if found is None:
        if ref.get("optional"):
            return None
        raise ConfigError(f'{kind} "{ref.get("name")}" not found')
    data = found.get("data") or {}
    return {k: base64.b64decode(v).decode() for k, v in data.items()} if secret else data


def _value_from(store: Store, pod: Obj, container: Obj, source: Obj) -> str | None:
    if "fieldRef" in source:
        return _field_ref(pod, source["fieldRef"]["fieldPath"])
    if "resourceFieldRef" in source:
        resource = source["resourceFieldRef"]["resource"]
        group, _, name = resource.partition(".")
        return str((container.get("resources", {}).get(group) or {}).get(name, "0"))
    for key, secret in (("secretKeyRef", True), ("configMapKeyRef", False)):
        if key in source:
            ref = source[key]
            data = _lookup(store, pod["metadata"]["namespace"], ref, secret)
            if data is None:
                return None
            if ref["key"] not in data:
                if ref.get("optional"):
                    return None
                raise ConfigError(
                    f"couldn't find key {ref['key']} in {'Secret' if secret else 'ConfigMap'} {pod['metadata']['namespace']}/{ref['name']}"
                )
            return data[ref["key"]]
    return None


def container_env(store: Store, pod: Obj, container: Obj) -> dict[str, str]:
    """The variables Kubernetes gives the container (envFrom first, then env in order)."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        for key, secret in (("secretRef", True), ("configMapRef", False)):
            if key in source:
                data = _lookup(store, pod["metadata"]["namespace"], source[key], secret) or {}
                env.update({source.get("prefix", "") + k: v for k, v in data.items()})
    for var in container.get("env", []):
        if "valueFrom" in var:
            value = _value_from(store, pod, container, var["valueFrom"])
            if value is not None:
                env[var["name"]] = value
        else:
            env[var["name"]] = expand(var.get("value", ""), env)
    return env
