"""What the API server does to an object besides schema checks: names, defaults, pod rules."""

from __future__ import annotations

import base64
import itertools
import re
import uuid
from typing import Any

from tests.kube.sim.errors import ApiError, invalid
from tests.kube.sim.resources import ResourceType

Obj = dict[str, Any]

_SUBDOMAIN = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1035 = r"[a-z]([-a-z0-9]*[a-z0-9])?"
_LABEL_VALUE = r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?"
_MESSAGES = {
    _SUBDOMAIN: "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '{}')",
    _LABEL: "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '{}')",
    _DNS1035: "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '{}')",
    _LABEL_VALUE: "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '{}')",
}  # fmt: skip
_NAME_RULES = {"Namespace": _LABEL, "Service": _DNS1035}
_service_ips = itertools.count(10)


def _format_cause(field: str, value: str, pattern: str, max_len: int) -> list[dict[str, str]]:
    causes = []
    if len(value) > max_len:
        causes.append(
            {
                "reason": "FieldValueInvalid",
                "field": field,
                "message": f'Invalid value: "{value}": must be no more than {max_len} characters',
            }
        )
    if not re.fullmatch(pattern, value):
        causes.append(
            {
                "reason": "FieldValueInvalid",
                "field": field,
                "message": f'Invalid value: "{value}": ' + _MESSAGES[pattern].format(pattern),
            }
        )
    return causes


def check_names(rtype: ResourceType, obj: Obj) -> None:
    """metadata.name, label values, container names and volume mounts, as the server checks them."""
    meta = obj["metadata"]
    causes: list[dict[str, str]] = []
    if not meta.get("name"):
        causes.append(
            {
                "reason": "FieldValueRequired",
                "field": "metadata.name",
                "message": "Required value: name or generateName is required",
            }
        )
    else:
        pattern = _NAME_RULES.get(rtype.kind, _SUBDOMAIN)
        causes += _format_cause(
            "metadata.name", meta["name"], pattern, 63 if pattern != _SUBDOMAIN else 253
        )
    for key, value in (meta.get("labels") or {}).items():
        causes += _format_cause(f"metadata.labels[{key}]", str(value), _LABEL_VALUE, 63)
    if rtype.kind == "Pod" and not rtype.group:
        causes += _pod_causes(obj.get("spec", {}))
    if causes:
        raise invalid(
            rtype.kind, meta.get("name", ""), rtype.group if rtype.is_custom else "", causes
        )


def _pod_causes(spec: Obj) -> list[dict[str, str]]:
    causes = []
    volumes = {v.get("name") for v in spec.get("volumes", [])}
    for group in ("initContainers", "containers"):
        for i, container in enumerate(spec.get(group, [])):
            causes += _format_cause(
                f"spec.{group}[{i}].name", container.get("name", ""), _LABEL, 63
            )
            for j, mount in enumerate(container.get("volumeMounts", [])):
                if mount.get("name") not in volumes:
                    causes.append(
                        {
                            "reason": "FieldValueNotFound",
                            "field": f"spec.{group}[{i}].volumeMounts[{j}].name",
                            "message": f'Not found: "{mount.get("name")}"',
                        }
                    )
    return causes


def _qos(containers: list[Obj]) -> str:
    resources = [c.get("resources", {}) for c in containers]
    if not any(r.get("requests") or r.get("limits") for r in resources):
        return "BestEffort"
    guaranteed = all(
        r.get("limits", {}).get(name) is not None
        and r.get("requests", {}).get(name, r["limits"][name]) == r["limits"][name]
        for r in resources
        for name in ("cpu", "memory")
    )
    return "Guaranteed" if guaranteed else "Burstable"


def _default_container(container: Obj) -> None:
    image = container.get("image", "")
    tag = image.rsplit("/", 1)[-1]
    latest = ":" not in tag or tag.endswith(":latest")
    container.setdefault(
        "imagePullPolicy", "Always" if latest and "@" not in tag else "IfNotPresent"
    )
    container.setdefault("terminationMessagePath", "/dev/termination-log")
    container.setdefault("terminationMessagePolicy", "File")
    resources = container.setdefault("resources", {})
    for name, value in (resources.get("limits") or {}).items():
        resources.setdefault("requests", {}).setdefault(name, value)
    for port in container.get("ports", []):
        port.setdefault("protocol", "TCP")


def default_pod(pod: Obj) -> None:
    spec = pod["spec"]
    for container in spec.get("initContainers", []) + spec.get("containers", []):
        _default_container(container)
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("securityContext", {})
    spec.setdefault("enableServiceLinks", True)
    spec.setdefault("priority", 0)
    spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
    account = spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"
    spec["serviceAccountName"] = spec["serviceAccount"] = account
    tolerations = spec.setdefault("tolerations", [])
    for key in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"):
        if not any(t.get("key") == key for t in tolerations):
            tolerations.append(
                {"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}
            )
    pod["status"] = {"phase": "Pending", "qosClass": _qos(spec.get("containers", []))}


def default_object(rtype: ResourceType, obj: Obj) -> None:
    """Fill in what the API server fills in on create."""
    meta = obj["metadata"]
    meta.setdefault("uid", str(uuid.uuid4()))
    if rtype.kind == "Pod" and not rtype.group:
        default_pod(obj)
    if rtype.kind == "Pod" or rtype.is_custom:
        meta["generation"] = 1
    if rtype.kind == "Namespace":
        meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = meta["name"]
        obj["spec"] = {"finalizers": ["kubernetes"]}
        obj["status"] = {"phase": "Active"}
    elif rtype.kind == "Secret":
        obj.setdefault("type", "Opaque")
        for key, value in (obj.pop("stringData", None) or {}).items():
            obj.setdefault("data", {})[key] = base64.b64encode(value.encode()).decode()
    elif rtype.kind == "PersistentVolumeClaim":
        spec = obj["spec"]
        spec.setdefault("volumeMode", "Filesystem")
        spec["volumeName"] = f"pvc-{meta['uid']}"
        storage = spec.get("resources", {}).get("requests", {}).get("storage", "1Gi")
        obj["status"] = {
            "phase": "Bound",
            "accessModes": spec.get("accessModes", ["ReadWriteOnce"]),
            "capacity": {"storage": storage},
        }
    elif rtype.kind == "Service":
        _default_service(obj["spec"])


def _default_service(spec: Obj) -> None:
    spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    if spec.get("clusterIP") != "None":
        number = next(_service_ips)
        spec["clusterIP"] = f"10.96.{number // 250}.{number % 250 + 1}"
        spec["clusterIPs"] = [spec["clusterIP"]]
    spec.setdefault("ipFamilies", ["IPv4"])
    spec.setdefault("ipFamilyPolicy", "SingleStack")
    spec.setdefault("internalTrafficPolicy", "Cluster")
    for port in spec.get("ports", []):
        port.setdefault("protocol", "TCP")
        port.setdefault("targetPort", port.get("port"))


_MUTABLE_POD_SPEC = "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)"


def _pod_spec_shape(spec: Obj) -> Obj:
    shape = {
        k: v
        for k, v in spec.items()
        if k not in ("activeDeadlineSeconds", "tolerations", "terminationGracePeriodSeconds")
    }
    for group in ("containers", "initContainers"):
        shape[group] = [{k: v for k, v in c.items() if k != "image"} for c in spec.get(group, [])]
    return shape


def check_update(rtype: ResourceType, old: Obj, new: Obj) -> None:
    """Refuse changes the server refuses: a pod's spec beyond images and tolerations."""
    if (
        rtype.kind == "Pod"
        and not rtype.group
        and _pod_spec_shape(old["spec"]) != _pod_spec_shape(new.get("spec", {}))
    ):
        cause = {
            "reason": "FieldValueForbidden",
            "field": "spec",
            "message": f"Forbidden: {_MUTABLE_POD_SPEC}",
        }
        raise invalid("Pod", old["metadata"]["name"], "", [cause])


def forbidden_pod(namespace: str, name: str, account: str) -> ApiError:
    """The ServiceAccount admission plugin's refusal."""
    return ApiError(
        403,
        "Forbidden",
        f'pods "{name}" is forbidden: error looking up service account {namespace}/{account}: serviceaccount "{account}" not found',
        {"name": name, "kind": "pods"},
    )
