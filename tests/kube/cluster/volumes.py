"""A pod's volumes as local directories, and mount paths rewritten to them.

A container process runs on the host file system, so each volumeMount's mountPath is replaced by
its local directory wherever it appears in command, args, env values and workingDir.
"""

from __future__ import annotations

import base64
import re
import shutil
from pathlib import Path
from typing import Any

from tests.kube.cluster.podenv import Store

Obj = dict[str, Any]


class MountError(Exception):
    """A volume cannot be set up yet (FailedMount)."""


def claim_dir(data_dir: Path, claim: Obj) -> Path:
    """Where a PersistentVolumeClaim's data lives: one directory per bound volume, outliving pods."""
    return data_dir / "volumes" / claim["spec"]["volumeName"]


def _write_items(target: Path, data: dict[str, str], items: list[Obj] | None) -> None:
    """Write base64-encoded `data` (all keys, or the chosen `items`) as files under `target`."""
    target.mkdir(parents=True, exist_ok=True)
    chosen = {i["key"]: i["path"] for i in items} if items else {k: k for k in data}
    for key, path in chosen.items():
        file = target / path
        file.parent.mkdir(parents=True, exist_ok=True)
        value = data.get(key, "")
        file.write_bytes(base64.b64decode(value))


def realise(store: Store, data_dir: Path, pod: Obj, pod_dir: Path) -> dict[str, Path]:
    """Local directory for each of the pod's volumes (by volume name)."""
    namespace = pod["metadata"]["namespace"]
    dirs: dict[str, Path] = {}
    for volume in pod["spec"].get("volumes", []):
        name = volume["name"]
        own = pod_dir / "volumes" / name
        if "persistentVolumeClaim" in volume:
            claim_name = volume["persistentVolumeClaim"]["claimName"]
            claim = store.get("/persistentvolumeclaims", namespace, claim_name)
            if claim is None:
                raise MountError(f'persistentvolumeclaim "{claim_name}" not found')
            dirs[name] = claim_dir(data_dir, claim)
        elif "configMap" in volume or "secret" in volume:
            is_secret = "secret" in volume
            source = volume["secret" if is_secret else "configMap"]
            ref = source.get("secretName" if is_secret else "name", "")
            found = store.get("/secrets" if is_secret else "/configmaps", namespace, ref)
            if found is None and not source.get("optional"):
                raise MountError(f'{"secret" if is_secret else "configmap"} "{ref}" not found')
            shutil.rmtree(own, ignore_errors=True)
            data = dict((found or {}).get("data") or {})
            if not is_secret:  # a ConfigMap's data is text, its binaryData base64
                data = {key: base64.b64encode(text.encode()).decode() for key, text in data.items()}
                data.update((found or {}).get("binaryData") or {})
            _write_items(own, data, source.get("items"))
            dirs[name] = own
        elif "hostPath" in volume:
            dirs[name] = Path(volume["hostPath"]["path"])
        else:
            dirs[name] = own
        dirs[name].mkdir(parents=True, exist_ok=True)
    return dirs


def container_mounts(container: Obj, volume_dirs: dict[str, Path]) -> dict[str, Path]:
    """mountPath -> local directory for one container (subPath honoured)."""
    mounts = {}
    for mount in container.get("volumeMounts", []):
        local = volume_dirs[mount["name"]]
        if mount.get("subPath"):
            local = local / mount["subPath"]
            local.mkdir(parents=True, exist_ok=True)
        mounts[mount["mountPath"].rstrip("/") or "/"] = local
    return mounts


def substitute(text: str, mounts: dict[str, Path]) -> str:
    """Replace each mountPath (at a path boundary, longest first) by its local directory."""
    for path in sorted((p for p in mounts if p != "/"), key=len, reverse=True):
        local = str(mounts[path]).replace("\\", "\\\\")
        text = re.sub(r"(?<![\w./-])" + re.escape(path) + r"(?=/|$|[\s:;,=\"'])", local, text)
    return text
