"""The API verbs (create, get, list, replace, patch, delete) on the store, without HTTP."""

from __future__ import annotations

import base64
import copy
import json
import random
from typing import Any

from tests.kube.sim import admission, events, patch, schema
from tests.kube.sim.errors import ApiError, already_exists, bad_request, conflict, not_found
from tests.kube.sim.resources import Registry, ResourceType
from tests.kube.sim.selectors import field_selector, label_selector
from tests.kube.sim.store import Store, now_iso

Obj = dict[str, Any]

_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"
_SERVER_FIELDS = (
    "uid",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "generation",
)
_PATCH_TYPES = {
    "application/json-patch+json": "json",
    "application/merge-patch+json": "merge",
    "application/strategic-merge-patch+json": "strategic",
}


class Api:
    """What the HTTP layer calls; raises ApiError with real Status bodies."""

    def __init__(self, registry: Registry, store: Store) -> None:
        self.registry = registry
        self.store = store

    # -- helpers -----------------------------------------------------------------------------

    def resource(self, group: str, version: str, plural: str) -> ResourceType:
        rtype = self.registry.get(group, version, plural)
        if rtype is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource", {})
        return rtype

    @staticmethod
    def present(rtype: ResourceType, obj: Obj) -> Obj:
        """The stored object as `rtype` shows it."""
        return events.to_events_v1(obj) if rtype.view_of else obj

    def matcher(self, rtype: ResourceType, labels: str | None, fields: str | None) -> Any:
        if rtype.view_of and fields:
            fields = fields.replace("regarding.", "involvedObject.").replace("note", "message")
        by_label = label_selector(labels)
        by_field = field_selector(fields, rtype.kind)
        return lambda obj: by_label(obj) and by_field(obj)

    def _existing(self, rtype: ResourceType, namespace: str, name: str) -> Obj:
        found = self.store.get(rtype.key, namespace if rtype.namespaced else "", name)
        if found is None:
            raise not_found(rtype.plural, name, rtype.group)
        return found

    def _typed_body(self, rtype: ResourceType, body: Any, namespace: str) -> Obj:
        if not isinstance(body, dict):
            raise bad_request("the body of the request was in an unknown format")
        body = copy.deepcopy(body)
        body.setdefault("apiVersion", rtype.api_version)
        body.setdefault("kind", rtype.kind)
        if body["apiVersion"] != rtype.api_version or body["kind"] != rtype.kind:
            raise bad_request(
                f"the API version in the data ({body['apiVersion']}) does not match the expected API version ({rtype.api_version})"
                if body["apiVersion"] != rtype.api_version
                else f"the kind in the data ({body['kind']}) does not match the expected kind ({rtype.kind})"
            )
        meta = body.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise bad_request("metadata must be an object")
        if rtype.namespaced:
            if meta.get("namespace", namespace) != namespace:
                raise bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request"
                )
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        return body

    def _stored(self, rtype: ResourceType, obj: Obj) -> Obj:
        return events.from_events_v1(obj) if rtype.view_of else obj

    # -- verbs -------------------------------------------------------------------------------

    def create(self, rtype: ResourceType, namespace: str, body: Any, dry_run: bool = False) -> Obj:
        obj = self._typed_body(rtype, body, namespace)
        meta = obj["metadata"]
        if meta.get("resourceVersion"):
            raise bad_request("resourceVersion should not be set on objects to be created")
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + "".join(random.choices(_NAME_CHARS, k=5))
        schema.validate(obj, rtype)
        admission.check_names(rtype, obj)
        obj = self._stored(rtype, obj)
        if rtype.namespaced and not self.store.exists("/namespaces", "", namespace):
            raise not_found("namespaces", namespace)
        if rtype.kind == "Pod" and not rtype.group:
            account = (
                obj["spec"].get("serviceAccountName")
                or obj["spec"].get("serviceAccount")
                or "default"
            )
            if not self.store.exists("/serviceaccounts", namespace, account):
                raise admission.forbidden_pod(namespace, meta["name"], account)
        if self.store.exists(rtype.key, meta.get("namespace", ""), meta["name"]):
            raise already_exists(rtype.plural, meta["name"], rtype.group)
        for field in _SERVER_FIELDS:
            meta.pop(field, None)
        if "status" in rtype.subresources and rtype.is_custom:
            obj.pop("status", None)
        admission.default_object(rtype, obj)
        if dry_run:
            return self.present(rtype, obj)
        created = self.store.create(rtype.key, obj)
        if rtype.kind == "Namespace":
            account = {
                "apiVersion": "v1",
                "kind": "ServiceAccount",
                "metadata": {"name": "default", "namespace": meta["name"]},
            }
            self.store.create("/serviceaccounts", account)
        elif rtype.kind == "CustomResourceDefinition":
            self.registry.add_crd(created)
        return self.present(rtype, created)

    def get(self, rtype: ResourceType, namespace: str, name: str) -> Obj:
        return self.present(rtype, self._existing(rtype, namespace, name))

    def list_objects(
        self,
        rtype: ResourceType,
        namespace: str | None,
        labels: str | None = None,
        fields: str | None = None,
        limit: int = 0,
        continue_token: str | None = None,
    ) -> Obj:
        match = self.matcher(rtype, labels, fields)
        items = [
            self.present(rtype, o) for o in self.store.objects(rtype.key, namespace) if match(o)
        ]
        rv, start = self.store.rv, 0
        if continue_token:
            state = json.loads(base64.b64decode(continue_token))
            rv, start = state["rv"], state["start"]
        metadata: Obj = {"resourceVersion": str(rv)}
        if limit and start + limit < len(items):
            token = json.dumps({"rv": rv, "start": start + limit}).encode()
            metadata["continue"] = base64.b64encode(token).decode()
            metadata["remainingItemCount"] = len(items) - start - limit
        items = items[start : start + limit] if limit else items[start:]
        for item in items:
            item.pop("apiVersion", None)
            item.pop("kind", None)
        return {
            "apiVersion": rtype.api_version,
            "kind": f"{rtype.kind}List",
            "metadata": metadata,
            "items": items,
        }

    def replace(
        self,
        rtype: ResourceType,
        namespace: str,
        name: str,
        body: Any,
        subresource: str = "",
        dry_run: bool = False,
    ) -> Obj:
        existing = self._existing(rtype, namespace, name)
        obj = self._typed_body(rtype, body, namespace)
        return self._update(rtype, existing, obj, subresource, dry_run)

    def patch(
        self,
        rtype: ResourceType,
        namespace: str,
        name: str,
        body: Any,
        content_type: str,
        subresource: str = "",
        dry_run: bool = False,
    ) -> Obj:
        existing = self._existing(rtype, namespace, name)
        kind = _PATCH_TYPES.get(content_type.split(";")[0].strip())
        if kind is None or (kind == "strategic" and rtype.is_custom):
            raise ApiError(
                415,
                "UnsupportedMediaType",
                f"the body of the request was in an unknown format - accepted media types include: {', '.join(_PATCH_TYPES)}",
            )
        current = self.present(rtype, copy.deepcopy(existing))
        if kind == "json":
            if not isinstance(body, list):
                raise bad_request("json patch must be a list of operations")
            patched = patch.json_patch(current, body)
        elif kind == "merge":
            patched = patch.merge_patch(current, body)
        else:
            patched = patch.strategic_merge_patch(current, body)
        return self._update(
            rtype, existing, self._typed_body(rtype, patched, namespace), subresource, dry_run
        )

    def _update(
        self, rtype: ResourceType, existing: Obj, obj: Obj, subresource: str, dry_run: bool
    ) -> Obj:
        meta, old_meta = obj["metadata"], existing["metadata"]
        if meta.get("name", old_meta["name"]) != old_meta["name"]:
            raise bad_request(
                f"the name of the object ({meta['name']}) does not match the name on the URL ({old_meta['name']})"
            )
        if meta.get("resourceVersion") and meta["resourceVersion"] != old_meta["resourceVersion"]:
            raise conflict(rtype.plural, old_meta["name"], rtype.group)
        schema.validate(obj, rtype)
        obj = self._stored(rtype, obj)
        if subresource == "status":
            obj = {**copy.deepcopy(existing), "status": obj.get("status", {})}
        elif "status" in rtype.subresources:
            obj["status"] = copy.deepcopy(existing.get("status"))
            if obj["status"] is None:
                obj.pop("status")
        meta = obj["metadata"]
        for field in _SERVER_FIELDS:
            if field in old_meta:
                meta[field] = old_meta[field]
            else:
                meta.pop(field, None)
        meta["name"] = old_meta["name"]
        meta["resourceVersion"] = old_meta["resourceVersion"]
        admission.check_names(rtype, obj)
        admission.check_update(rtype, existing, obj)
        if "generation" in old_meta and obj.get("spec") != existing.get("spec"):
            meta["generation"] = old_meta["generation"] + 1
        if obj == existing or dry_run:
            return self.present(rtype, obj)
        return self.present(rtype, self.store.update(rtype.key, obj))

    def delete(
        self, rtype: ResourceType, namespace: str, name: str, options: Obj | None = None
    ) -> Obj:
        options = options or {}
        existing = self._existing(rtype, namespace, name)
        meta = existing["metadata"]
        preconditions = options.get("preconditions") or {}
        if preconditions.get("uid") not in (None, meta["uid"]) or preconditions.get(
            "resourceVersion"
        ) not in (None, meta["resourceVersion"]):
            raise conflict(rtype.plural, name, rtype.group)
        if options.get("dryRun"):
            return self.present(rtype, existing)
        policy = options.get("propagationPolicy") or "Background"
        if policy == "Orphan":
            self.orphan_dependents(meta["uid"])
        elif policy == "Foreground":
            self.delete_dependents(meta["uid"], "Foreground")
        if rtype.kind == "Namespace":
            for key in self.store.storage_keys():
                for obj in self.store.objects(key, name):
                    self.store.delete(key, name, obj["metadata"]["name"])
        if rtype.kind == "Pod" and not rtype.group:
            return self._delete_pod(existing, options)
        self.store.delete(rtype.key, meta.get("namespace", ""), name)
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
            "details": {
                "name": name,
                "group": rtype.group,
                "kind": rtype.plural,
                "uid": meta["uid"],
            },
        }

    def _delete_pod(self, pod: Obj, options: Obj) -> Obj:
        """Pods on a node terminate gracefully: deletionTimestamp now, gone when the kubelet is done."""
        meta = pod["metadata"]
        grace = options.get("gracePeriodSeconds")
        grace = (
            pod["spec"].get("terminationGracePeriodSeconds", 30) if grace is None else int(grace)
        )
        running = pod["spec"].get("nodeName") and pod["status"].get("phase") not in (
            "Succeeded",
            "Failed",
        )
        if not running or grace <= 0:
            return self.store.delete("/pods", meta["namespace"], meta["name"])
        if "deletionTimestamp" in meta:
            return pod
        meta["deletionTimestamp"] = now_iso()
        meta["deletionGracePeriodSeconds"] = grace
        return self.store.update("/pods", pod)

    def delete_collection(
        self,
        rtype: ResourceType,
        namespace: str | None,
        labels: str | None,
        fields: str | None,
        options: Obj | None,
    ) -> Obj:
        listed = self.list_objects(rtype, namespace, labels, fields)
        for item in listed["items"]:
            self.delete(
                rtype, item["metadata"].get("namespace", ""), item["metadata"]["name"], options
            )
        return listed

    # -- owners ------------------------------------------------------------------------------

    def dependents(self, uid: str) -> list[tuple[ResourceType, Obj]]:
        return [
            (self.registry.by_key(key), obj)
            for key in self.store.storage_keys()
            for obj in self.store.objects(key)
            if any(ref.get("uid") == uid for ref in obj["metadata"].get("ownerReferences", []))
        ]

    def delete_dependents(self, uid: str, policy: str = "Background") -> None:
        """Delete what `uid` owns (the garbage collector's job)."""
        for rtype, obj in self.dependents(uid):
            meta = obj["metadata"]
            if self.store.exists(rtype.key, meta.get("namespace", ""), meta["name"]):
                self.delete(
                    rtype, meta.get("namespace", ""), meta["name"], {"propagationPolicy": policy}
                )

    def orphan_dependents(self, uid: str) -> None:
        for rtype, obj in self.dependents(uid):
            refs = obj["metadata"]["ownerReferences"]
            obj["metadata"]["ownerReferences"] = [r for r in refs if r.get("uid") != uid]
            self.store.update(rtype.key, obj)
