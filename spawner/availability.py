"""GPUs free on a Kubernetes cluster right now: node capacity minus what pods hold.

One watch over nodes and one over pods (all namespaces: any pod may hold a GPU) keep a local
copy of both, shared by every spawn page view, as KubeSpawner's reflectors do for its pods: a
page view reads memory and never lists the cluster. The hub's service account needs `list` and
`watch` on nodes and pods cluster-wide; of other namespaces' pods it keeps only what GPUs they
hold (never their environment, commands or volumes).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from functools import partial
from typing import Any

from kubernetes_asyncio import watch
from kubernetes_asyncio.client import ApiException, CoreV1Api

from hubflow.profiles import Holding
from hubflow.profiles.model import GPU_RESOURCES

log = logging.getLogger(__name__)

#: The node label that names a node's GPU product, per GPU resource (set by the vendors'
#: feature discovery); nodes without it count under the resource's name.
PRODUCT_LABELS = {
    "nvidia.com/gpu": "nvidia.com/gpu.product",
    "amd.com/gpu": "amd.com/gpu.product-name",
}
#: Pods in these phases hold nothing any more.
_ENDED = {"Succeeded", "Failed"}

Obj = dict[str, Any]


class Reflection:
    """A local copy of one kind of object, kept current by list-then-watch.

    Not KubeSpawner's ResourceReflector (which the spawner uses for its pods and events): that
    one keys every object by `metadata.namespace`, which cluster-scoped Nodes lack, and keeps
    whole objects, where this copy keeps only what `keep` returns (a pod's GPU fields).

    A watch that ends is resumed from the last version seen; a version the server no longer
    has (410) or any other error leads to a fresh list, after a growing pause.
    """

    def __init__(
        self,
        kind: str,
        list_method: Callable[..., Awaitable[Any]],
        watch_seconds: int = 60,
        keep: Callable[[Obj], Obj] = lambda obj: obj,
    ) -> None:
        self.kind = kind
        self.list_method = list_method
        self.watch_seconds = watch_seconds
        self.keep = keep
        self.objects: dict[str, Obj] = {}
        self.loaded = asyncio.Event()

    @staticmethod
    def key(obj: Obj) -> str:
        meta = obj["metadata"]
        return f"{meta.get('namespace', '')}/{meta['name']}"

    async def _list(self) -> str:
        response = await self.list_method(_preload_content=False)
        if response.status >= 400:
            raise ApiException(status=response.status, reason=response.reason)
        listed = json.loads(await response.read())
        self.objects = {self.key(obj): self.keep(obj) for obj in listed["items"]}
        self.loaded.set()
        return str(listed["metadata"]["resourceVersion"])

    async def _watch(self, version: str) -> str:
        """Apply watch events from `version` until the server ends the watch; the last version."""
        method = partial(self.list_method, _preload_content=False)
        async with watch.Watch().stream(
            method, resource_version=version, timeout_seconds=self.watch_seconds
        ) as stream:
            async for event in stream:
                obj = event["raw_object"]
                version = obj["metadata"].get("resourceVersion", version)
                if event["type"] == "DELETED":
                    self.objects.pop(self.key(obj), None)
                elif event["type"] in ("ADDED", "MODIFIED"):
                    self.objects[self.key(obj)] = self.keep(obj)
        return version

    async def run(self) -> None:
        """List, then watch for ever (until cancelled)."""
        pause = 0.1
        while True:
            try:
                version = await self._list()
                pause = 0.1
                while True:
                    version = await self._watch(version)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                gone = isinstance(e, ApiException) and e.status == 410
                log.log(
                    logging.INFO if gone else logging.WARNING,
                    "Watching %s: %s; listing again in %.1fs",
                    self.kind,
                    "version gone" if gone else e,
                    pause,
                )
                await asyncio.sleep(pause)
                pause = min(pause * 2, 30)


def _count(value: Any) -> int:
    try:
        return int(str(value))
    except ValueError:
        return 0


def pod_request(pod: Obj, resource: str) -> int:
    """How many of an extended resource a pod holds: the larger of its containers' sum and its
    largest init container (as the scheduler counts); a limit alone counts as the request."""

    def asked(container: Obj) -> int:
        res = container.get("resources") or {}
        return _count(
            (res.get("requests") or {}).get(resource)
            or (res.get("limits") or {}).get(resource)
            or 0
        )

    spec = pod.get("spec") or {}
    running = sum(asked(c) for c in spec.get("containers") or [])
    init = max((asked(c) for c in spec.get("initContainers") or []), default=0)
    return max(running, init)


def gpu_fields(pod: Obj) -> Obj:
    """What `gpu_availability` reads of a pod: its name, node, phase and containers' resources."""
    spec = pod.get("spec") or {}

    def resources(key: str) -> list[Obj]:
        return [{"resources": c.get("resources") or {}} for c in spec.get(key) or []]

    meta = pod["metadata"]
    return {
        "metadata": {"name": meta["name"], "namespace": meta.get("namespace", "")},
        "spec": {
            "nodeName": spec.get("nodeName"),
            "containers": resources("containers"),
            "initContainers": resources("initContainers"),
        },
        "status": {"phase": (pod.get("status") or {}).get("phase")},
    }


#: The rank pods of jobs, as the jobs service labels them (jobs/kubeflow/manifests.py), and
#: the annotations naming their user and the user's groups.
JOB_PODS = "app.kubernetes.io/managed-by=hubflow,app.kubernetes.io/component=job"
JOB_USER_ANNOTATION = "hubflow.io/user"
JOB_GROUPS_ANNOTATION = "hubflow.io/groups"


def job_holdings(
    pods: Iterable[Obj], resources: Iterable[str] = GPU_RESOURCES.values()
) -> list[Holding]:
    """What the jobs' rank pods that have not ended hold of GPUs, by user and groups."""
    holdings = []
    for pod in pods:
        if (pod.get("status") or {}).get("phase") in _ENDED:
            continue
        annotations = pod["metadata"].get("annotations") or {}
        try:
            groups = frozenset(json.loads(annotations.get(JOB_GROUPS_ANNOTATION) or "[]"))
        except (TypeError, ValueError):
            groups = frozenset()
        gpus = sum(pod_request(pod, resource) for resource in resources)
        user = annotations.get(JOB_USER_ANNOTATION, "")
        holdings.append(Holding(user, groups, gpus, server=False))
    return holdings


def _schedulable(node: Obj) -> bool:
    if (node.get("spec") or {}).get("unschedulable"):
        return False
    conditions = (node.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def gpu_availability(
    nodes: Iterable[Obj], pods: Iterable[Obj], resources: Iterable[str] = GPU_RESOURCES.values()
) -> dict[str, tuple[int, int]]:
    """GPU product -> (free, total) over the nodes; GPUs on a cordoned or not-ready node count in
    the total but are not free."""
    held: dict[str, dict[str, int]] = {}
    for pod in pods:
        node = (pod.get("spec") or {}).get("nodeName")
        if not node or (pod.get("status") or {}).get("phase") in _ENDED:
            continue
        for resource in resources:
            count = pod_request(pod, resource)
            if count:
                on_node = held.setdefault(node, {})
                on_node[resource] = on_node.get(resource, 0) + count
    out: dict[str, tuple[int, int]] = {}
    for node in nodes:
        name = node["metadata"]["name"]
        labels = node["metadata"].get("labels") or {}
        allocatable = (node.get("status") or {}).get("allocatable") or {}
        for resource in resources:
            total = _count(allocatable.get(resource, 0))
            if not total:
                continue
            product = labels.get(PRODUCT_LABELS.get(resource, ""), resource)
            free = max(total - held.get(name, {}).get(resource, 0), 0) if _schedulable(node) else 0
            was_free, was_total = out.get(product, (0, 0))
            out[product] = (was_free + free, was_total + total)
    return out


class ClusterGpus:
    """The cluster's nodes and pods, watched once, and the GPUs free on them now."""

    def __init__(self, core: CoreV1Api, watch_seconds: int = 60) -> None:
        self.nodes = Reflection("nodes", core.list_node, watch_seconds)
        self.pods = Reflection(
            "pods", core.list_pod_for_all_namespaces, watch_seconds, keep=gpu_fields
        )
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> ClusterGpus:
        """Start both watches (in the running event loop)."""
        if not self._tasks:
            self._tasks = [asyncio.create_task(r.run()) for r in (self.nodes, self.pods)]
        return self

    async def wait_loaded(self, timeout: float) -> bool:
        """Wait until nodes and pods were listed once; False if that took longer than `timeout`."""
        try:
            await asyncio.wait_for(
                asyncio.gather(self.nodes.loaded.wait(), self.pods.loaded.wait()), timeout
            )
        except asyncio.TimeoutError:
            return False
        return True

    def availability(self) -> dict[str, tuple[int, int]] | None:
        """GPU product -> (free, total) now; None until both kinds were listed once."""
        if not (self.nodes.loaded.is_set() and self.pods.loaded.is_set()):
            return None
        return gpu_availability(self.nodes.objects.values(), self.pods.objects.values())

    async def stop(self) -> None:
        """Stop the watches."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []


_shared: dict[int, ClusterGpus] = {}


async def shared_cluster_gpus(
    core: Callable[[], CoreV1Api], first_load_timeout: float = 10
) -> Mapping[str, tuple[int, int]] | None:
    """GPU availability from the one ClusterGpus of this event loop, started on first use
    with the client `core()` gives; None while the cluster could not be listed yet."""
    loop = id(asyncio.get_running_loop())
    if loop not in _shared:
        _shared[loop] = ClusterGpus(core()).start()
    gpus = _shared[loop]
    await gpus.wait_loaded(first_load_timeout)
    return gpus.availability()


async def stop_shared_cluster_gpus() -> None:
    """Stop the shared watches of this event loop (tests; the hub keeps them for its life)."""
    gpus = _shared.pop(id(asyncio.get_running_loop()), None)
    if gpus is not None:
        await gpus.stop()
