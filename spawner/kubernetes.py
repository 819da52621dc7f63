"""Kubernetes mode: each user's server is a pod, built by KubeSpawner from a resolved profile.

hubflow resolves the user's choice (never trusting the form) into a ResolvedProfile, then sets
KubeSpawner's own traits from it and applies any z2jh `kubespawner_override` with KubeSpawner's
own override machinery, so everything KubeSpawner does (slugs, PVCs, events, reflectors) stays
as it is.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import dataclasses
import json
from collections.abc import AsyncIterator, Callable
from functools import partial
from typing import Any

from jupyterhub.utils import exponential_backoff
from kubernetes_asyncio.client.rest import ApiException
from kubespawner import KubeSpawner
from kubespawner.clients import shared_client
from tornado import web
from traitlets import Float, default

from hubflow.launcher.contract import DEFAULT_MOUNT_PATH
from hubflow.profiles import ResolvedProfile
from hubflow.profiles.merge import toleration_identity
from hubflow.profiles.server_record import STATE_KEY
from hubflow.spawner import kube_events
from hubflow.spawner.availability import JOB_PODS, job_holdings, shared_cluster_gpus
from hubflow.spawner.event_cache import BoundedEventReflector
from hubflow.spawner.ides import IDES
from hubflow.spawner.kube_retry import api_error_message, retry_transient
from hubflow.spawner.pod_cache import EnvlessPodReflector
from hubflow.spawner.profile_mixin import ProfileSpawnerMixin
from hubflow.spawner.spawn_page import GpuAvailability

WORKSPACE_VOLUME = "workspace"
#: The labels of the pods the hub watches, besides KubeSpawner's component label: KubeSpawner's
#: own (the chart's NetworkPolicy selects servers by them too).
SERVER_POD_LABELS = {"app.kubernetes.io/managed-by": "kubespawner"}
DEFAULT_WORKSPACE_SIZE = "10Gi"


def extra_volume_specs(
    resolved: ResolvedProfile, per_user_claim: Callable[[str], str]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The profile's extra volumes as pod volumes and container volume mounts; a volume made
    for each user (one with a `size`) is the claim `per_user_claim(volume name)`."""
    volumes, mounts = [], []
    for vol in resolved.extra_volumes:
        if vol.get("claim"):
            source = {"persistentVolumeClaim": {"claimName": vol["claim"]}}
        elif vol.get("size"):
            source = {"persistentVolumeClaim": {"claimName": per_user_claim(vol["name"])}}
        else:
            source = {"hostPath": {"path": vol["host_path"], "type": "Directory"}}
        volumes.append({"name": vol["name"], **source})
        mounts.append(
            {
                "name": vol["name"],
                "mountPath": vol["mount_path"],
                "readOnly": bool(vol.get("read_only", False)),
            }
        )
    return volumes, mounts


def with_additions(
    added: list[Any], now: list[Any], clash: Callable[[Any, Any], bool]
) -> list[Any]:
    """`now` (a list setting after the overrides) with the entries of `added` (hubflow's) that
    it lacks and that clash with none of its own, first."""
    if now is added:
        return now
    kept = [a for a in added if a not in now and not any(clash(a, b) for b in now)]
    return [*kept, *now]


class SpawnFailed(web.HTTPError):
    """A spawn that cannot succeed; `jupyterhub_message` says why in plain words, and the hub
    shows it on the spawn page (a quick failure) or in the spawn's progress (a later one)."""

    def __init__(self, reason: str, kind: str) -> None:
        self.jupyterhub_message = f"Your server could not start: {reason}"
        super().__init__(503, log_message=self.jupyterhub_message.replace("%", "%%"))
        self.kind = kind


class HubflowKubeSpawner(ProfileSpawnerMixin, KubeSpawner):
    """Runs each user's server as a pod with a persistent workspace PVC, from hubflow profiles."""

    blocked_timeout = Float(
        30,
        config=True,
        help="""
        Seconds a starting pod may stay blocked (unschedulable, its image cannot be pulled, its
        container cannot be set up, a volume cannot be attached) before the spawn fails with the
        reason and the pod is deleted, instead of waiting out `start_timeout`. A pod for which the
        cluster autoscaler is adding a node, or whose volumes a provisioner is still making, is not
        blocked. 0 waits for `start_timeout`.
        """,
    )

    #: How often a starting pod's status is looked at for something that blocks it.
    blocked_check_interval = 1.0

    # KubeSpawner's traits this class reads back (for the type checker).
    node_selector: dict[str, str]
    tolerations: list[dict[str, Any]]
    environment: dict[str, Any]

    @default("slug_scheme")
    def _slug_scheme_default(self) -> str:
        return "safe"

    @default("automount_service_account_token")
    def _automount_default(self) -> bool:
        # Users' servers hold no Kubernetes credentials (DESIGN.md, invariants).
        return False

    @default("uid")
    def _uid_default(self) -> int:
        return 1000

    @default("gid")
    def _gid_default(self) -> int:
        return 100

    @default("fs_gid")
    def _fs_gid_default(self) -> int:
        return 100

    @default("allow_privilege_escalation")
    def _allow_privilege_escalation_default(self) -> bool:
        return False

    # Pod Security "restricted" (docs/kubernetes.md): with uid, gid, fs_gid and
    # allow_privilege_escalation above, servers run non-root, without Linux capabilities, under
    # the container runtime's default seccomp profile.
    @default("pod_security_context")
    def _pod_security_context_default(self) -> dict[str, Any]:
        return {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}

    @default("container_security_context")
    def _container_security_context_default(self) -> dict[str, Any]:
        return {"capabilities": {"drop": ["ALL"]}}

    def run_as(self) -> dict[str, int]:
        """The pod's uid, gid and fsGroup where they are fixed numbers (the jobs service runs
        the user's ranks as the same)."""
        ids = {"uid": self.uid, "gid": self.gid, "fs_gid": self.fs_gid}
        return {name: value for name, value in ids.items() if isinstance(value, int)}

    @default("storage_pvc_ensure")
    def _storage_pvc_ensure_default(self) -> bool:
        return True

    @default("storage_capacity")
    def _storage_capacity_default(self) -> str:
        # The workspace's size when a profile names none (a PVC must request some storage).
        return DEFAULT_WORKSPACE_SIZE

    @default("pvc_name_template")
    def _pvc_name_template_default(self) -> str:
        # One workspace per user, shared by the user's named servers, kept when servers stop.
        return "workspace-{username}"

    async def _start(self) -> str:
        """KubeSpawner's start, failed early (pod deleted, PVC kept) when the pod is blocked."""
        starting = asyncio.ensure_future(super()._start())
        watching = asyncio.ensure_future(self._wait_until_blocked())
        try:
            await asyncio.wait({starting, watching}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            watching.cancel()
            if not starting.done():
                starting.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await starting
        if starting.done() and not starting.cancelled():
            try:
                return str(starting.result())
            except ApiException as error:
                reason = f"Kubernetes refused it ({api_error_message(error)})"
                raise SpawnFailed(reason, "refused") from error
        blocker = watching.result()
        failed = SpawnFailed(blocker.message, blocker.kind)
        self.log.warning("Spawn of %s failed early: %s", self.pod_name, failed)
        await self.stop(now=True)
        raise failed

    async def _wait_until_blocked(self) -> kube_events.Blocker:
        """Return once this spawn's pod has been blocked for `blocked_timeout` seconds."""
        if self.blocked_timeout <= 0:
            await asyncio.Future()  # never: the start timeout applies
        loop = asyncio.get_running_loop()
        since: float | None = None
        while True:
            await asyncio.sleep(self.blocked_check_interval)
            reflector = self.pod_reflector
            pod = reflector.pods.get(f"{self.namespace}/{self.pod_name}") if reflector else None
            # The event watch's own dict, not KubeSpawner's `events`, which sorts every event
            # of the namespace at each call (hundreds of spawns waiting at once cost seconds).
            events = self.event_reflector.resources.values() if self.event_reflector else ()
            found = kube_events.blocker(pod, events) if pod else None
            if found is None:
                since = None
            elif since is None:
                since = loop.time()
            elif loop.time() - since >= self.blocked_timeout:
                return found

    async def _start_watching_pods(self, replace: bool = False) -> Any:
        """KubeSpawner's shared pod watch, of this namespace's user servers only (KubeSpawner's
        labels on them), each kept without its containers' environment (spawner/pod_cache.py)."""
        return await self._start_reflector(
            kind="pods",
            reflector_class=EnvlessPodReflector,
            labels=SERVER_POD_LABELS | {"component": self.component_label},
            omit_namespace=self.enable_user_namespaces,
            replace=replace,
        )

    async def _start_watching_events(self, replace: bool = False) -> Any:
        """KubeSpawner's shared event watch, with a bounded cache (spawner/event_cache.py)."""
        return await self._start_reflector(
            kind="events",
            reflector_class=BoundedEventReflector,
            fields={"involvedObject.kind": "Pod"},
            omit_namespace=self.enable_user_namespaces,
            replace=replace,
        )

    # KubeSpawner's requests, with transient API errors (429, 5xx) retried instead of fatal.
    async def _make_create_pod_request(self, pod: Any, request_timeout: int) -> bool:
        request = super()._make_create_pod_request(pod, request_timeout)
        return await retry_transient(request, f"create pod {self.pod_name}", self.log)

    async def _make_create_pvc_request(self, pvc: Any, request_timeout: int) -> bool:
        request = super()._make_create_pvc_request(pvc, request_timeout)
        return await retry_transient(request, f"create PVC {self.pvc_name}", self.log)

    async def _make_delete_pod_request(
        self, pod_name: str, delete_options: Any, grace_seconds: int, request_timeout: int
    ) -> bool:
        request = super()._make_delete_pod_request(
            pod_name, delete_options, grace_seconds, request_timeout
        )
        return await retry_transient(request, f"delete pod {pod_name}", self.log)

    async def progress(self) -> AsyncIterator[dict[str, Any]]:
        """KubeSpawner's progress, each pod event in plain words."""
        async for event in super().progress():
            raw = event.get("raw_event")
            if raw:
                event["message"] = kube_events.plain_message(raw)
            yield event

    async def gpu_availability(self) -> GpuAvailability:
        """GPUs free on the cluster now, from the hub's one shared watch of nodes and pods."""
        return await shared_cluster_gpus(lambda: shared_client("CoreV1Api"))

    async def refresh_job_holdings(self) -> None:
        """The GPUs jobs' rank pods in this namespace hold, by user and groups (quotas count
        them with servers'); when the cluster cannot be asked, the last answer stays."""
        try:
            response = await self.api.list_namespaced_pod(
                self.namespace, label_selector=JOB_PODS, _preload_content=False
            )
            if response.status >= 400:
                raise ApiException(status=response.status, reason=response.reason)
            pods = json.loads(await response.read())["items"]
        except (ApiException, OSError, ValueError, KeyError) as e:
            self.log.warning("Cannot list job pods for the GPU quotas: %s", e)
            return
        self.job_holdings = job_holdings(pods)

    async def load_user_options(self) -> None:
        """Resolve and check the user's choice, then set the pod's traits from it."""
        await self.refresh_job_holdings()
        resolved = self.admit(self.user_options)
        self.apply_profile(resolved)
        # the image the pod runs (a z2jh profile may leave it to the spawner's own setting)
        self.resolved = dataclasses.replace(resolved, image=self.image)

    def apply_profile(self, resolved: ResolvedProfile) -> None:
        """Set KubeSpawner's traits from a resolved profile.

        hubflow's own settings go first (workspace, environment, scheduling from the file's
        defaults, default URL). A z2jh profile's overrides then go one after the other through
        KubeSpawner's own machinery, so every setting they name is what KubeSpawner makes of
        it; where one replaces a list, hubflow's entries that do not clash with it are kept.
        """
        workspace = resolved.workspace or {}
        mount_path = workspace.get("mount_path") or DEFAULT_MOUNT_PATH
        self.default_url = IDES[resolved.ide].default_url
        if not resolved.kubespawner_overrides:
            self._apply_resources(resolved)
        self.node_selector = {**self.node_selector, **resolved.node_selector}
        self.tolerations = [*self.tolerations, *resolved.tolerations]
        self.environment = {**self.environment, **self.hubflow_environment(resolved, mount_path)}
        if workspace.get("size"):
            self.storage_capacity = workspace["size"]
        if workspace.get("storage_class"):
            self.storage_class = workspace["storage_class"]
        extra_volumes, extra_mounts = extra_volume_specs(resolved, self.per_user_claim_name)
        self.volumes = [
            {"name": WORKSPACE_VOLUME, "persistentVolumeClaim": {"claimName": "{pvc_name}"}},
            *extra_volumes,
        ]
        self.volume_mounts = [
            {"name": WORKSPACE_VOLUME, "mountPath": mount_path},
            *extra_mounts,
        ]
        self.notebook_dir = mount_path
        if resolved.kubespawner_overrides:
            self._apply_z2jh_overrides(resolved.kubespawner_overrides)

    def _apply_resources(self, resolved: ResolvedProfile) -> None:
        """A hubflow profile's image, CPU, memory and GPUs."""
        if not resolved.image:
            raise ValueError(
                f"profile {resolved.slug!r}: no image for {resolved.ide} (ides.{resolved.ide}.image)"
            )
        self.image = resolved.image
        self.cpu_limit = resolved.cpu_limit
        self.cpu_guarantee = resolved.cpu_guarantee
        self.mem_limit = resolved.mem_limit
        self.mem_guarantee = resolved.mem_guarantee
        if resolved.gpu_count and resolved.gpu_resource:
            self.extra_resource_limits = {resolved.gpu_resource: str(resolved.gpu_count)}
            self.extra_resource_guarantees = {resolved.gpu_resource: str(resolved.gpu_count)}

    def _apply_z2jh_overrides(self, overrides: list[dict[str, Any]]) -> None:
        """A z2jh profile's overrides, in order, as KubeSpawner applies them; then hubflow's
        tolerations, volumes and mounts that an override's list replaced come back unless they
        clash with it (a toleration with the same key and effect; a volume or mount with the
        same name; a mount at the same path, whose hubflow volume then goes too)."""
        tolerations, volumes, mounts = self.tolerations, self.volumes, self.volume_mounts
        for override in overrides:
            self._apply_overrides(copy.deepcopy(override))
        self.tolerations = with_additions(
            tolerations,
            self.tolerations,
            lambda a, b: toleration_identity(a) == toleration_identity(b),
        )
        self.volume_mounts = with_additions(
            mounts,
            self.volume_mounts,
            lambda a, b: a.get("name") == b.get("name") or a.get("mountPath") == b.get("mountPath"),
        )
        mounted = {mount.get("name") for mount in self.volume_mounts}
        volumes = [v for v in volumes if v.get("name") in mounted]
        self.volumes = with_additions(
            volumes, self.volumes, lambda a, b: a.get("name") == b.get("name")
        )

    def per_user_volumes(self) -> list[dict[str, Any]]:
        """The profile's extra volumes made for each user (those with a `size`)."""
        return [
            vol for vol in (self.resolved.extra_volumes if self.resolved else []) if vol.get("size")
        ]

    def per_user_claim_name(self, volume: str) -> str:
        """The PVC of this user's own volume `volume` (collision-free, like the workspace's)."""
        return str(self._expand_user_properties(f"{volume}-{{username}}"))

    async def get_pod_manifest(self) -> Any:
        """KubeSpawner's pod, once the user's own extra volumes exist (kept, like the workspace)."""
        for vol in self.per_user_volumes():
            await self._ensure_per_user_claim(vol)
        return await super().get_pod_manifest()

    async def _ensure_per_user_claim(self, vol: dict[str, Any]) -> None:
        claim = self.get_pvc_manifest()  # the workspace's labels and access modes
        claim.metadata.name = self.per_user_claim_name(vol["name"])
        claim.spec.resources.requests = {"storage": vol["size"]}
        claim.spec.storage_class_name = vol.get("storage_class") or self.storage_class or None
        await exponential_backoff(
            partial(self._make_create_pvc_request, claim, self.k8s_api_request_timeout),
            f"Could not create PVC {claim.metadata.name}",
            timeout=self.k8s_api_request_retry_timeout,
        )

    def get_state(self) -> dict[str, Any]:
        state: dict[str, Any] = super().get_state()
        record = self.server_record(
            # The claims of the user's own volumes, so the jobs service can mount them too.
            claims={
                vol["name"]: self.per_user_claim_name(vol["name"])
                for vol in self.per_user_volumes()
            },
            run_as=self.run_as(),
        )
        if record is not None:
            state[STATE_KEY] = record.to_state()
        return state

    def load_state(self, state: dict[str, Any]) -> None:
        super().load_state(state)
        self.load_server_record(state)

    def clear_state(self) -> None:
        super().clear_state()
        self.resolved = None
