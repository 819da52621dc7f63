"""The Pod Security Standards' "restricted" profile (Kubernetes v1.30, `restricted:latest`), as
Pod Security Admission checks a pod spec: what the tests hold hubflow's pods to before a real
control plane refuses them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

Obj = dict[str, Any]

#: Volume types the restricted profile allows.
ALLOWED_VOLUMES = {
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
    "projected", "secret",
}  # fmt: skip
#: Sysctls the baseline profile allows.
SAFE_SYSCTLS = {
    "kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
}  # fmt: skip


def _containers(spec: Obj) -> Iterator[Obj]:
    for key in ("initContainers", "containers", "ephemeralContainers"):
        yield from spec.get(key) or []


def restricted_violations(spec: Obj) -> list[str]:
    """What in a pod spec the "restricted" profile forbids, in words; empty when it passes."""
    found: list[str] = []
    pod = spec.get("securityContext") or {}
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(field):
            found.append(f"{field} is true")
    for volume in spec.get("volumes") or []:
        kinds = set(volume) - {"name"}
        if not kinds <= ALLOWED_VOLUMES:
            found.append(f"volume {volume['name']!r} is of type {sorted(kinds)}")
    for sysctl in pod.get("sysctls") or []:
        if sysctl.get("name") not in SAFE_SYSCTLS:
            found.append(f"sysctl {sysctl.get('name')} is not safe")
    if pod.get("runAsUser") == 0:
        found.append("the pod runs as uid 0")
    pod_seccomp = (pod.get("seccompProfile") or {}).get("type")
    if pod_seccomp not in (None, "RuntimeDefault", "Localhost"):
        found.append(f"the pod's seccomp profile is {pod_seccomp}")
    for container in _containers(spec):
        name = container["name"]
        context = container.get("securityContext") or {}
        if context.get("privileged"):
            found.append(f"container {name!r} is privileged")
        if context.get("allowPrivilegeEscalation") is not False:
            found.append(f"container {name!r} does not set allowPrivilegeEscalation: false")
        capabilities = context.get("capabilities") or {}
        if "ALL" not in (capabilities.get("drop") or []):
            found.append(f"container {name!r} does not drop ALL capabilities")
        if set(capabilities.get("add") or []) - {"NET_BIND_SERVICE"}:
            found.append(f"container {name!r} adds capabilities {capabilities['add']}")
        if context.get("runAsNonRoot", pod.get("runAsNonRoot")) is not True:
            found.append(f"container {name!r} may run as root (runAsNonRoot is not true)")
        if context.get("runAsUser") == 0:
            found.append(f"container {name!r} runs as uid 0")
        seccomp = (context.get("seccompProfile") or {}).get("type") or pod_seccomp
        if seccomp not in ("RuntimeDefault", "Localhost"):
            found.append(f"container {name!r} has no RuntimeDefault or Localhost seccomp profile")
        if any(port.get("hostPort") for port in container.get("ports") or []):
            found.append(f"container {name!r} uses a host port")
        if context.get("procMount", "Default") != "Default":
            found.append(f"container {name!r} has procMount {context['procMount']}")
    return found
