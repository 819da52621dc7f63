"""The node agent: the one played part of the test cluster (it plays the kubelet, nothing else).

- registers the Nodes (capacity with cpu, memory, pods, nvidia.com/gpu; GPU labels; taints) and
  renews their Leases in kube-node-lease; adopts a Node made later with the label ADOPT_LABEL
  (its capacity in its status, as a kubelet registers it) the same way, until it is deleted;
- runs each pod bound to one of them: its own network namespace (veth into the cluster bridge, an
  address from the pod range, its own /etc/hosts naming the pods and headless Services of its
  namespace, as cluster DNS would, and its only source of names), its volumes as directories,
  its containers as local processes (init containers first; restartPolicy with back-off),
  downward-API env resolved, KUBERNETES_SERVICE_HOST/PORT set to the real API server;
- an image is "known" when IMAGES maps it to a local environment; any other is ErrImagePull then
  ImagePullBackOff, as a registry that lacks it would make it;
- writes pod status through pods/status (strategic merge patch with the pod's UID as a
  precondition, as the kubelet does);
- records the kubelet's Events of a pod (Pulling, Pulled, Failed, BackOff, Created, Started,
  Killing) in its namespace, as the kubelet's event recorder does;
- on deletion: SIGTERM, SIGKILL after the grace period, final status, then DELETE with grace 0 and
  a UID precondition (finalizers of others are never touched);
- serves /containerLogs/<ns>/<pod>/<container> over TLS (client certs checked against the
  cluster CA) for pods/log through the API server (follow, tailLines, limitBytes, timestamps,
  sinceSeconds, previous);
- provisions hostPath PersistentVolumes for claims of every StorageClass whose provisioner is
  PROVISIONER (`standard`, the default; a test may add others): the part a local-path
  provisioner plays on a one-host cluster.

Run: python -m tests.kube.cluster.node_agent <config.json> (controlplane.py starts it).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime
import fnmatch
import json
import os
import random
import signal
import ssl
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from tests.kube.cluster import podenv, procs, volumes
from tests.kube.cluster.netns import NETNS_ETC, Network
from tests.kube.cluster.podlogs import ContainerLog

Obj = dict[str, Any]
VENV_BIN = str(Path(sys.executable).parent)

#: Images this node can "pull": glob -> environment. Anything else is missing from the registry.
#: "python" runs the container's command with this checkout's virtualenv first on PATH (hubflow,
#: torch, jupyter-server are installed there), which stands for every image hubflow ships or uses.
IMAGES: list[tuple[str, str | None]] = [
    ("*doesnotexist*", None),
    ("*:nope", None),
    ("alpine*", "alpine"),
    ("busybox*", "alpine"),
    ("*", "python"),
]
#: What is first on PATH in each environment ("alpine": the host's sh and coreutils, plus the
#: busybox tools of images/alpine that the host lacks, such as nslookup).
ENV_PATH = {
    "python": [VENV_BIN],
    "alpine": [str(Path(__file__).parent / "images" / "alpine")],
}
BACKOFF_MAX = 10.0
#: A Node made with this label (by a test, as the admin) is run by this agent too.
ADOPT_LABEL = "hubflow.test/node-agent"
#: The provisioner of the StorageClasses whose claims this agent provisions.
PROVISIONER = "hubflow.test/local"


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def image_env(image: str) -> str | None:
    for pattern, env in IMAGES:
        if fnmatch.fnmatchcase(image, pattern):
            return env
    return None


class DictStore:
    """What podenv and volumes read (ConfigMaps, Secrets, claims), fetched first."""

    def __init__(self, objects: dict[str, dict[tuple[str, str], Obj]]) -> None:
        self.objects = objects

    def get(self, key: str, namespace: str, name: str) -> Obj | None:
        return self.objects.get(key, {}).get((namespace, name))


class Api:
    """A small client of the real API server (client certificate auth)."""

    def __init__(self, config: Obj) -> None:
        self.url = config["api_url"]
        pki = Path(config["ca"]).parent
        self.ssl = ssl.create_default_context(cafile=config["ca"])
        self.ssl.load_cert_chain(pki / "node-agent.crt", pki / "node-agent.key")
        self.session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=self.ssl, limit=50),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
        )

    async def request(
        self, method: str, path: str, body: Any = None, content_type: str = "application/json",
        ok_missing: bool = False, params: dict[str, str] | None = None,
    ) -> Obj | None:  # fmt: skip
        assert self.session is not None
        data = json.dumps(body) if body is not None else None
        async with self.session.request(
            method, self.url + path, data=data, params=params,
            headers={"Content-Type": content_type, "Accept": "application/json"},
            # The API server has 30 s to answer; the wait for one of the pool's connections is not
            # counted (with a hundred pods starting at once, requests queue there).
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=30),
        ) as response:  # fmt: skip
            text = await response.text()
            if response.status == 404 and ok_missing:
                return None
            if response.status >= 400:
                raise ApiError(response.status, f"{method} {path}: {response.status} {text[:500]}")
            return json.loads(text) if text else {}

    async def watch(self, path: str, handle: Any) -> None:
        """List then watch `path` for ever (relisting after a 410), calling handle(type, obj)."""
        assert self.session is not None
        while True:
            try:
                listed = await self.request("GET", path)
                assert listed is not None
                for item in listed["items"]:
                    await handle("ADDED", item)
                version = listed["metadata"]["resourceVersion"]
                while True:
                    params = {"watch": "1", "resourceVersion": version, "allowWatchBookmarks": "1",
                              "timeoutSeconds": "300"}  # fmt: skip
                    async with self.session.get(
                        self.url + path, params=params, timeout=aiohttp.ClientTimeout(total=None)
                    ) as response:
                        if response.status >= 400:
                            break
                        gone = False
                        async for line in response.content:
                            event = json.loads(line)
                            obj = event["object"]
                            if event["type"] == "ERROR":
                                gone = True
                                break
                            version = obj["metadata"]["resourceVersion"]
                            if event["type"] != "BOOKMARK":
                                await handle(event["type"], obj)
                        if gone:
                            break
            except (aiohttp.ClientError, asyncio.TimeoutError, ApiError) as error:
                print(f"watch {path}: {error}", flush=True)
            await asyncio.sleep(1)


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Pod:
    """One pod this agent runs: its network namespace, processes, container states and logs."""

    obj: Obj
    ip: str = ""
    netns: str = ""
    dir: Path = Path()
    task: asyncio.Task[None] | None = None
    procs: dict[str, asyncio.subprocess.Process] = field(default_factory=dict)
    logs: dict[str, ContainerLog] = field(default_factory=dict)
    previous: dict[str, ContainerLog] = field(default_factory=dict)
    statuses: dict[str, Obj] = field(default_factory=dict)
    initialized: bool = False
    phase: str = "Pending"
    terminating: bool = False
    started: str = field(default_factory=now)

    @property
    def uid(self) -> str:
        return str(self.obj["metadata"]["uid"])

    @property
    def key(self) -> tuple[str, str]:
        return self.obj["metadata"]["namespace"], self.obj["metadata"]["name"]


class NodeAgent:
    def __init__(self, config: Obj) -> None:
        self.config = config
        self.api = Api(config)
        self.net = Network(config["index"])
        self.state = Path(config["state"])
        self.nodes = {n["name"]: n for n in config["nodes"]}
        self.ports = {name: 10250 + i for i, name in enumerate(self.nodes)}
        self.pods: dict[str, Pod] = {}
        self.seen: dict[str, Obj] = {}  # every pod of the cluster by uid (for hosts files)
        self._hosts_dirty: set[str] = set()
        self._hosts_event = asyncio.Event()
        self._next = 0

    # -- nodes and leases --------------------------------------------------------------------

    def _node(self, spec: Obj) -> Obj:
        labels = {
            "kubernetes.io/hostname": spec["name"],
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            **spec.get("labels", {}),
        }
        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": spec["name"], "labels": labels},
            "spec": {"taints": spec.get("taints", [])},
        }

    def _node_status(self, spec: Obj) -> Obj:
        capacity = {
            "cpu": spec["cpu"],
            "memory": spec["memory"],
            "pods": str(spec.get("pods", 110)),
            "ephemeral-storage": "100Gi",
        }
        if spec.get("gpus"):
            capacity["nvidia.com/gpu"] = str(spec["gpus"])
        stamp = now()
        conditions = [
            {"type": t, "status": "False", "reason": r, "message": m,
             "lastHeartbeatTime": stamp, "lastTransitionTime": stamp}
            for t, r, m in (
                ("MemoryPressure", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
                ("DiskPressure", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                ("PIDPressure", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
            )
        ]  # fmt: skip
        conditions.append(
            {
                "type": "Ready",
                "status": "True",
                "reason": "KubeletReady",
                "message": "kubelet is posting ready status",
                "lastHeartbeatTime": stamp,
                "lastTransitionTime": stamp,
            }  # fmt: skip
        )
        return {
            "status": {
                "capacity": capacity,
                "allocatable": capacity,
                "conditions": conditions,
                "addresses": [
                    {"type": "InternalIP", "address": self.config["host_ip"]},
                    {"type": "Hostname", "address": spec["name"]},
                ],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": self.ports[spec["name"]]}},
                "nodeInfo": {
                    "architecture": "amd64",
                    "operatingSystem": "linux",
                    "kubeletVersion": "v1.35.4-hubflow-node-agent",
                    "kubeProxyVersion": "",
                    "osImage": "hubflow node agent",
                    "kernelVersion": os.uname().release,
                    "containerRuntimeVersion": "hubflow-processes://1",
                    "machineID": spec["name"],
                    "systemUUID": spec["name"],
                    "bootID": spec["name"],
                },  # fmt: skip
                "phase": "Running",
            }
        }

    async def register(self) -> None:
        for spec in self.nodes.values():
            try:
                await self.api.request("POST", "/api/v1/nodes", self._node(spec))
            except ApiError as error:
                if error.status != 409:
                    raise
            await self._report_ready(spec)

    async def _report_ready(self, spec: Obj) -> None:
        await self.api.request(
            "PATCH", f"/api/v1/nodes/{spec['name']}/status", self._node_status(spec),
            "application/strategic-merge-patch+json",
        )  # fmt: skip

    async def on_node(self, type_: str, node: Obj) -> None:
        """Adopt a Node labelled ADOPT_LABEL (Ready, its Lease, its pods); drop it once deleted."""
        name = node["metadata"]["name"]
        if type_ == "DELETED":
            self.nodes.pop(name, None)
            return
        if name in self.nodes:
            return
        capacity = (node.get("status") or {}).get("capacity") or {}
        spec = {"name": name, "cpu": capacity.get("cpu", "1"), "memory": capacity.get("memory", "1Gi"),
                "pods": capacity.get("pods", 110), "gpus": capacity.get("nvidia.com/gpu", 0)}  # fmt: skip
        self.ports.setdefault(name, min(self.ports.values()))  # one log server serves every node
        self.nodes[name] = spec  # before it is Ready: a pod bound to it at once is run
        try:
            await self._report_ready(spec)
            await self._renew(name)
        except (ApiError, aiohttp.ClientError, asyncio.TimeoutError):
            self.nodes.pop(name, None)  # tried again on the Node's next change

    async def leases(self) -> None:
        while True:
            for name in list(self.nodes):
                with contextlib.suppress(ApiError, aiohttp.ClientError, asyncio.TimeoutError):
                    await self._renew(name)
            await asyncio.sleep(10 * random.uniform(0.96, 1.0))

    async def _renew(self, name: str) -> None:
        stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        path = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases"
        lease = await self.api.request("GET", f"{path}/{name}", ok_missing=True)
        if lease is None:
            node = await self.api.request("GET", f"/api/v1/nodes/{name}")
            assert node is not None
            owner = {
                "apiVersion": "v1",
                "kind": "Node",
                "name": name,
                "uid": node["metadata"]["uid"],
            }
            await self.api.request(
                "POST", path,
                {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                 "metadata": {"name": name, "namespace": "kube-node-lease", "ownerReferences": [owner]},
                 "spec": {"holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": stamp}},
            )  # fmt: skip
        else:
            lease["spec"]["renewTime"] = stamp
            await self.api.request("PUT", f"{path}/{name}", lease)

    # -- watching pods -----------------------------------------------------------------------

    async def on_pod(self, type_: str, pod: Obj) -> None:
        uid = pod["metadata"]["uid"]
        if type_ == "DELETED":
            old = self.seen.pop(uid, None)
            if old is not None and old["status"].get("podIP"):
                self._dirty(pod["metadata"]["namespace"])
            rt = self.pods.get(uid)
            if rt is not None and not rt.terminating:
                asyncio.create_task(self.terminate(rt, 0, final_delete=False))
            return
        old = self.seen.get(uid)
        self.seen[uid] = pod
        if (old or {}).get("status", {}).get("podIP") != pod["status"].get("podIP"):
            self._dirty(pod["metadata"]["namespace"])
        rt = self.pods.get(uid)
        if pod["spec"].get("nodeName") not in self.nodes and rt is None:
            return
        if rt is not None:
            rt.obj = pod
        if pod["metadata"].get("deletionTimestamp"):
            grace = pod["metadata"].get("deletionGracePeriodSeconds") or 0
            if rt is None:
                asyncio.create_task(self.final_delete(pod))
            elif not rt.terminating:
                asyncio.create_task(self.terminate(rt, grace))
            return
        if (
            rt is None
            and pod["status"].get("phase", "Pending") == "Pending"
            and not pod["status"].get("podIP")
        ):
            rt = Pod(pod)
            self.pods[uid] = rt
            rt.task = asyncio.create_task(self.run(rt))

    def _dirty(self, namespace: str) -> None:
        self._hosts_dirty.add(namespace)
        self._hosts_event.set()

    async def hosts_writer(self) -> None:
        """Keep each pod's /etc/hosts naming the pods and headless Services of its namespace."""
        while True:
            await self._hosts_event.wait()
            await asyncio.sleep(0.1)
            self._hosts_event.clear()
            dirty, self._hosts_dirty = self._hosts_dirty, set()
            for namespace in dirty:
                with contextlib.suppress(ApiError, aiohttp.ClientError, asyncio.TimeoutError):
                    await self._write_hosts(namespace)

    async def _write_hosts(self, namespace: str) -> None:
        # The pods this agent runs are named by the address it gave them, before the watch
        # brings their status back: as a kubelet's hosts file, a pod's own always names it.
        ours = {uid: rt.ip for uid, rt in self.pods.items() if rt.ip}
        pods = [
            {**p, "status": {**p["status"], "podIP": p["status"].get("podIP") or ours[uid]}}
            for uid, p in self.seen.items()
            if p["metadata"]["namespace"] == namespace
            and (p["status"].get("podIP") or uid in ours)
            and not p["metadata"].get("deletionTimestamp")
        ]  # fmt: skip
        services = await self.api.request("GET", f"/api/v1/namespaces/{namespace}/services")
        assert services is not None
        lines: list[str] = []
        for pod in pods:
            spec, ip = pod["spec"], pod["status"]["podIP"]
            hostname = spec.get("hostname") or pod["metadata"]["name"]
            names = [hostname]
            if spec.get("subdomain"):
                sub = f"{hostname}.{spec['subdomain']}"
                names = [
                    f"{sub}.{namespace}.svc.cluster.local",
                    f"{sub}.{namespace}.svc",
                    sub,
                    *names,
                ]
            lines.append(f"{ip}\t{' '.join(names)}")
        for svc in services["items"]:
            selector = svc["spec"].get("selector")
            if svc["spec"].get("clusterIP") != "None" or not selector:
                continue
            name = svc["metadata"]["name"]
            for pod in pods:
                labels = pod["metadata"].get("labels") or {}
                if all(labels.get(k) == v for k, v in selector.items()):
                    fqdn = f"{name}.{namespace}.svc"
                    lines.append(f"{pod['status']['podIP']}\t{fqdn}.cluster.local {fqdn} {name}")
        shared = "\n".join(lines) + "\n"
        for rt in list(self.pods.values()):
            if rt.key[0] != namespace or not rt.netns:
                continue
            own = (
                "# Kubernetes-managed hosts file (hubflow node agent).\n127.0.0.1\tlocalhost\n"
                "::1\tlocalhost ip6-localhost ip6-loopback\n"
            )
            # Written in place: `ip netns exec` bind-mounts this very file over /etc/hosts.
            with contextlib.suppress(OSError), open(f"/etc/netns/{rt.netns}/hosts", "r+") as file:
                file.seek(0)
                file.write(own + shared)
                file.truncate()

    # -- events ------------------------------------------------------------------------------

    async def event(self, rt: Pod, reason: str, message: str, container: str = "",
                    warning: bool = False) -> None:  # fmt: skip
        """Record one of the kubelet's Events about this pod (reported by its node)."""
        ns, name = rt.key
        stamp = now()
        involved: Obj = {"apiVersion": "v1", "kind": "Pod", "namespace": ns, "name": name,
                         "uid": rt.uid}  # fmt: skip
        if container:
            involved["fieldPath"] = f"spec.containers{{{container}}}"
        node = rt.obj["spec"].get("nodeName", "")
        body = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": f"{name}.{os.urandom(8).hex()}", "namespace": ns},
            "involvedObject": involved, "reason": reason, "message": message,
            "type": "Warning" if warning else "Normal", "count": 1,
            "firstTimestamp": stamp, "lastTimestamp": stamp,
            "source": {"component": "kubelet", "host": node},
            "reportingComponent": "kubelet", "reportingInstance": node,
        }  # fmt: skip
        with contextlib.suppress(ApiError, aiohttp.ClientError, asyncio.TimeoutError):
            await self.api.request("POST", f"/api/v1/namespaces/{ns}/events", body)

    # -- pod status --------------------------------------------------------------------------

    async def publish(self, rt: Pod) -> None:
        if rt.terminating and rt.phase not in ("Succeeded", "Failed"):
            return
        spec = rt.obj["spec"]
        init_names = [c["name"] for c in spec.get("initContainers", [])]
        main = [rt.statuses[c["name"]] for c in spec["containers"] if c["name"] in rt.statuses]
        all_ready = len(main) == len(spec["containers"]) and all(s["ready"] for s in main)
        stamp = now()

        def cond(type_: str, ok: bool, reason: str = "", message: str = "") -> Obj:
            c: Obj = {"type": type_, "status": "True" if ok else "False", "lastProbeTime": None,
                      "lastTransitionTime": stamp}  # fmt: skip
            if not ok and reason:
                c.update(reason=reason, message=message)
            return c

        terminal = rt.phase in ("Succeeded", "Failed")
        unready = " ".join(
            c["name"] for c in spec["containers"] if not rt.statuses.get(c["name"], {}).get("ready")
        )
        why = (
            ("PodCompleted", "")
            if terminal
            else ("ContainersNotReady", f"containers with unready status: [{unready}]")
        )
        conditions = [
            cond("PodReadyToStartContainers", bool(rt.netns) and not terminal),
            cond("Initialized", rt.initialized, *(("PodCompleted", "") if terminal else ("ContainersNotInitialized", f"containers with incomplete status: [{' '.join(init_names)}]"))),
            cond("ContainersReady", all_ready and not terminal, *why),
            cond("Ready", all_ready and not terminal, *why),
        ]  # fmt: skip
        old = {c["type"]: c for c in rt.obj["status"].get("conditions", [])}
        for c in conditions:  # keep transition times of unchanged conditions
            if c["type"] in old and old[c["type"]]["status"] == c["status"]:
                c["lastTransitionTime"] = old[c["type"]].get("lastTransitionTime", stamp)
        status: Obj = {
            "phase": rt.phase,
            "conditions": conditions,
            "hostIP": self.config["host_ip"],
            "hostIPs": [{"ip": self.config["host_ip"]}],
            "startTime": rt.started,
            "containerStatuses": main,
        }
        if rt.ip:
            status.update(podIP=rt.ip, podIPs=[{"ip": rt.ip}])
        if init_names:
            status["initContainerStatuses"] = [
                rt.statuses[n] for n in init_names if n in rt.statuses
            ]
        ns, name = rt.key
        try:
            updated = await self.api.request(
                # The pod's UID in the patch is a precondition (as the kubelet's): a pod deleted and
                # made again under its name (a user's server restarted) is not given the old one's
                # final status (409).
                "PATCH", f"/api/v1/namespaces/{ns}/pods/{name}/status",
                {"metadata": {"uid": rt.uid}, "status": status},
                "application/strategic-merge-patch+json",
            )  # fmt: skip
            if updated is not None and updated["metadata"]["uid"] == rt.uid:
                rt.obj = updated
        except ApiError as error:
            if error.status not in (404, 409, 422):
                raise

    def _state(self, rt: Pod, container: Obj, state: Obj, ready: bool = False, restarts: int = 0,
               container_id: str = "") -> None:  # fmt: skip
        name = container["name"]
        old = rt.statuses.get(name, {})
        last = old.get("lastState", {})
        if "terminated" in old.get("state", {}) and "terminated" not in state:
            last = old["state"]
        image = container.get("image", "")
        status: Obj = {
            "name": name, "image": image, "imageID": "", "ready": ready, "restartCount": restarts,
            "started": "running" in state, "state": state, "lastState": last,
        }  # fmt: skip
        if "waiting" not in state or old.get("imageID"):
            status["imageID"] = f"hubflow-local://{image}"
        if container_id or old.get("containerID"):
            status["containerID"] = container_id or old["containerID"]
        rt.statuses[name] = status

    # -- running a pod -----------------------------------------------------------------------

    async def run(self, rt: Pod) -> None:
        try:
            await self._run(rt)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # noqa: BLE001 (report and keep the agent alive)
            print(f"pod {rt.key}: {error!r}", flush=True)

    async def _run(self, rt: Pod) -> None:
        spec = rt.obj["spec"]
        waiting = "PodInitializing" if spec.get("initContainers") else "ContainerCreating"
        for c in spec.get("initContainers", []) + spec["containers"]:
            self._state(rt, c, {"waiting": {"reason": waiting}})
        self._next += 1
        rt.ip = self.net.next_ip()
        rt.dir = self.state / rt.uid
        rt.dir.mkdir(parents=True, exist_ok=True)
        rt.netns = await asyncio.to_thread(self.net.add, f"p{self._next}", rt.ip)
        # Its hosts file is this cluster's DNS: a name (or address) it lacks does not exist, as
        # cluster DNS answers NXDOMAIN; no "temporary failure" from an absent name server.
        (NETNS_ETC / rt.netns / "nsswitch.conf").write_text("hosts: files\n")
        await self.publish(rt)
        self._dirty(rt.key[0])
        volume_dirs = await self._mount(rt)
        for c in spec.get("initContainers", []):
            if c.get("restartPolicy") == "Always":  # a sidecar: runs alongside the main containers
                asyncio.create_task(self._container(rt, c, volume_dirs, init=False))
                continue
            if await self._container(rt, c, volume_dirs, init=True) != 0:
                rt.phase = "Failed"
                await self.publish(rt)
                return
        rt.initialized = True
        await self.publish(rt)
        codes = await asyncio.gather(
            *(self._container(rt, c, volume_dirs, False) for c in spec["containers"])
        )
        rt.phase = "Succeeded" if all(code == 0 for code in codes) else "Failed"
        await self.publish(rt)
        await self._cleanup(rt)

    async def _store(self, namespace: str) -> DictStore:
        objects: dict[str, dict[tuple[str, str], Obj]] = {}
        for key in ("configmaps", "secrets", "persistentvolumeclaims"):
            listed = await self.api.request("GET", f"/api/v1/namespaces/{namespace}/{key}")
            assert listed is not None
            objects["/" + key] = {(namespace, o["metadata"]["name"]): o for o in listed["items"]}
        return DictStore(objects)

    async def _mount(self, rt: Pod) -> dict[str, Path]:
        while True:
            try:
                store = await self._store(rt.key[0])
                dirs = volumes.realise(store, self.state.parent, rt.obj, rt.dir)  # type: ignore[arg-type]
                for volume in rt.obj["spec"].get("volumes", []):
                    if "projected" in volume:
                        await self._projected(rt, volume, dirs[volume["name"]], store)
                    elif "downwardAPI" in volume:
                        await self._projected(
                            rt, {"projected": {"sources": [volume]}}, dirs[volume["name"]], store
                        )
                return dirs
            except (volumes.MountError, podenv.ConfigError) as error:
                print(f"pod {rt.key}: MountVolume.SetUp failed: {error}", flush=True)
            await asyncio.sleep(1)

    async def _projected(self, rt: Pod, volume: Obj, target: Path, store: DictStore) -> None:
        """The service-account token (TokenRequest bound to the pod), kube-root-ca.crt, namespace."""
        ns, name = rt.key
        for source in volume["projected"].get("sources", []):
            if "serviceAccountToken" in source:
                sat = source["serviceAccountToken"]
                sa = rt.obj["spec"].get("serviceAccountName", "default")
                request = {
                    "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                    "spec": {"expirationSeconds": max(3600, sat.get("expirationSeconds", 3607)),
                             "audiences": [sat["audience"]] if sat.get("audience") else [],
                             "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": name, "uid": rt.uid}},
                }  # fmt: skip
                answer = await self.api.request(
                    "POST", f"/api/v1/namespaces/{ns}/serviceaccounts/{sa}/token", request
                )
                assert answer is not None
                (target / sat["path"]).write_text(answer["status"]["token"])
            elif "configMap" in source:
                found = store.get("/configmaps", ns, source["configMap"]["name"]) or {}
                data = found.get("data") or {}
                for item in source["configMap"].get("items") or [
                    {"key": k, "path": k} for k in data
                ]:
                    (target / item["path"]).write_text(data.get(item["key"], ""))
            elif "secret" in source:
                found = store.get("/secrets", ns, source["secret"]["name"]) or {}
                data = found.get("data") or {}
                for item in source["secret"].get("items") or [{"key": k, "path": k} for k in data]:
                    (target / item["path"]).write_bytes(base64.b64decode(data.get(item["key"], "")))
            elif "downwardAPI" in source:
                for item in source["downwardAPI"].get("items", []):
                    if "fieldRef" in item:
                        value = podenv._field_ref(rt.obj, item["fieldRef"]["fieldPath"])
                        (target / item["path"]).parent.mkdir(parents=True, exist_ok=True)
                        (target / item["path"]).write_text(value)

    async def _pull(self, rt: Pod, container: Obj) -> None:
        image = container.get("image", "")
        name = container["name"]
        await self.event(rt, "Pulling", f'Pulling image "{image}"', name)
        reported = False
        while image_env(image) is None:
            if not reported:
                detail = (
                    f'rpc error: code = NotFound desc = failed to pull and unpack image "{image}": '
                    f'failed to resolve reference "{image}": {image}: not found'
                )
                self._state(
                    rt, container, {"waiting": {"reason": "ErrImagePull", "message": detail}}
                )
                await self.publish(rt)
                await self.event(
                    rt, "Failed", f'Failed to pull image "{image}": {detail}', name, True
                )
                await self.event(rt, "Failed", "Error: ErrImagePull", name, True)
                await asyncio.sleep(1)
                self._state(rt, container, {"waiting": {"reason": "ImagePullBackOff",
                                                        "message": f'Back-off pulling image "{image}"'}})  # fmt: skip
                await self.publish(rt)
                await self.event(rt, "BackOff", f'Back-off pulling image "{image}"', name, True)
                reported = True
            await asyncio.sleep(5)
        await self.event(
            rt, "Pulled", f'Container image "{image}" already present on machine', name
        )

    def _prepare(self, rt: Pod, container: Obj, volume_dirs: dict[str, Path], store: DictStore
                 ) -> tuple[list[str], dict[str, str], Path]:  # fmt: skip
        words = container.get("command", []) + container.get("args", [])
        if not words:
            raise podenv.ConfigError("no command or args: an image's entrypoint cannot run here")
        mounts = volumes.container_mounts(container, volume_dirs)
        pod_env = podenv.container_env(store, rt.obj, container)  # type: ignore[arg-type]
        argv = [volumes.substitute(podenv.expand(a, pod_env), mounts) for a in words]
        home = rt.dir / "home"
        home.mkdir(parents=True, exist_ok=True)
        host, port = self.config["api_url"].removeprefix("https://").split(":")
        env = {
            "PATH": ":".join([*ENV_PATH[image_env(container.get("image", "")) or "python"],
                              "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"]),
            "HOME": str(home),
            "HOSTNAME": rt.obj["spec"].get("hostname") or rt.obj["metadata"]["name"],
            "LANG": "C.UTF-8",
            "KUBERNETES_SERVICE_HOST": host, "KUBERNETES_SERVICE_PORT": port,
            "KUBERNETES_SERVICE_PORT_HTTPS": port, "KUBERNETES_PORT": f"tcp://{host}:{port}",
        }  # fmt: skip
        env.update({k: volumes.substitute(v, mounts) for k, v in pod_env.items()})
        workdir = (
            Path(volumes.substitute(container["workingDir"], mounts))
            if container.get("workingDir")
            else rt.dir / "root"
        )
        workdir.mkdir(parents=True, exist_ok=True)
        return argv, env, workdir

    async def _container(
        self, rt: Pod, container: Obj, volume_dirs: dict[str, Path], init: bool
    ) -> int:
        name = container["name"]
        policy = container.get("restartPolicy") or rt.obj["spec"].get("restartPolicy", "Always")
        restarts = 0
        await self._pull(rt, container)
        while True:
            try:
                store = await self._store(rt.key[0])
                argv, env, workdir = self._prepare(rt, container, volume_dirs, store)
            except podenv.ConfigError as error:
                self._state(rt, container, {"waiting": {"reason": "CreateContainerConfigError", "message": str(error)}},
                            restarts=restarts)  # fmt: skip
                await self.publish(rt)
                await asyncio.sleep(2)
                continue
            code = await self._execute(rt, container, argv, env, workdir, restarts, init)
            if rt.terminating:
                return code
            if not ((policy == "Always" and not init) or (policy == "OnFailure" and code != 0)
                    or (init and policy != "Never" and code != 0)):  # fmt: skip
                return code
            restarts += 1
            delay = min(2 ** (restarts - 1), BACKOFF_MAX)
            meta = rt.obj["metadata"]
            message = f"back-off {delay:g}s restarting failed container={name} pod={meta['name']}_{meta['namespace']}({meta['uid']})"
            self._state(
                rt,
                container,
                {"waiting": {"reason": "CrashLoopBackOff", "message": message}},
                restarts=restarts,
            )
            await self.publish(rt)
            await asyncio.sleep(delay)

    async def _execute(self, rt: Pod, container: Obj, argv: list[str], env: dict[str, str],
                       workdir: Path, restarts: int, init: bool) -> int:  # fmt: skip
        name = container["name"]
        if name in rt.logs:
            rt.previous[name] = rt.logs[name]
        log = rt.logs[name] = ContainerLog()
        container_id = f"hubflow-local://{os.urandom(16).hex()}"
        started = now()
        try:
            proc = await asyncio.create_subprocess_exec(
                "ip", "netns", "exec", rt.netns, "unshare", "--uts", "sh", "-c", 'hostname "$0" && exec "$@"',
                env["HOSTNAME"], *argv, cwd=workdir, env=env,
                stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        except OSError as error:
            await log.close()
            message = f"failed to start {argv[0]}: {error.strerror}"
            self._state(rt, container, {"terminated": {"exitCode": 128, "reason": "StartError", "message": message,
                                                        "startedAt": started, "finishedAt": now()}}, restarts=restarts)  # fmt: skip
            await self.publish(rt)
            return 128
        rt.procs[name] = proc
        await self.event(rt, "Created", f"Created container: {name}", name)
        await self.event(rt, "Started", f"Started container {name}", name)
        self._state(rt, container, {"running": {"startedAt": started}}, ready=not init, restarts=restarts,
                    container_id=container_id)  # fmt: skip
        if not init:
            rt.phase = "Running"
        await self.publish(rt)
        assert proc.stdout is not None
        async for line in proc.stdout:
            await log.append(line)
        code = await proc.wait()
        code = 128 - code if code < 0 else code
        await log.close()
        self._state(rt, container, {"terminated": {
            "exitCode": code, "reason": "Completed" if code == 0 else "Error",
            "startedAt": started, "finishedAt": now(), "containerID": container_id}},
            restarts=restarts, container_id=container_id)  # fmt: skip
        if not rt.terminating:
            await self.publish(rt)
        return code

    # -- stopping ----------------------------------------------------------------------------

    async def terminate(self, rt: Pod, grace: float, final_delete: bool = True) -> None:
        """SIGTERM the containers, SIGKILL after `grace`, final status, then the final DELETE."""
        rt.terminating = True
        live = [p for p in rt.procs.values() if p.returncode is None]
        for name in [n for n, p in rt.procs.items() if p.returncode is None]:
            await self.event(rt, "Killing", f"Stopping container {name}", name)
        known = {pid for p in live for pid in procs.signal_tree(p.pid, signal.SIGTERM)}
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(p.returncode is None for p in live):
            await asyncio.sleep(0.05)
        for p in rt.procs.values():
            procs.signal_tree(p.pid, signal.SIGKILL, known)
        for p in rt.procs.values():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(p.wait(), 5)
        if rt.task:
            rt.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await rt.task
        for log in rt.logs.values():
            await log.close()
        if final_delete:
            if rt.phase not in ("Succeeded", "Failed"):
                for c in rt.obj["spec"]["containers"]:
                    st = rt.statuses.get(c["name"], {}).get("state", {})
                    if "terminated" not in st:
                        self._state(rt, c, {"terminated": {"exitCode": 137, "reason": "Error", "startedAt": (st.get("running") or {}).get("startedAt", rt.started), "finishedAt": now()}})  # fmt: skip
                codes = [
                    s["state"].get("terminated", {}).get("exitCode", 1)
                    for s in rt.statuses.values()
                ]
                rt.phase = "Succeeded" if codes and all(c == 0 for c in codes) else "Failed"
                with contextlib.suppress(Exception):
                    await self.publish(rt)
            await self.final_delete(rt.obj)
        await self._cleanup(rt)
        self.pods.pop(rt.uid, None)

    async def _cleanup(self, rt: Pod) -> None:
        if rt.netns:
            await asyncio.to_thread(self.net.remove, rt.netns)
            rt.netns = ""

    async def final_delete(self, pod: Obj) -> None:
        meta = pod["metadata"]
        body = {"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 0,
                "preconditions": {"uid": meta["uid"]}}  # fmt: skip
        with contextlib.suppress(ApiError):
            await self.api.request(
                "DELETE", f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}", body
            )

    async def on_service(self, type_: str, svc: Obj) -> None:
        if svc["spec"].get("clusterIP") == "None":
            self._dirty(svc["metadata"]["namespace"])

    # -- volumes: the local provisioner ------------------------------------------------------

    async def on_claim(self, type_: str, claim: Obj) -> None:
        spec, meta = claim["spec"], claim["metadata"]
        if (
            type_ == "DELETED"
            or spec.get("volumeName")
            or claim.get("status", {}).get("phase") == "Bound"
        ):
            return
        # The PV controller names the provisioner of the claim's StorageClass, as it does for
        # any external provisioner.
        annotations = meta.get("annotations") or {}
        if annotations.get("volume.kubernetes.io/storage-provisioner") != PROVISIONER:
            return
        name = f"pvc-{meta['uid']}"
        path = self.state.parent / "volumes" / name
        path.mkdir(parents=True, exist_ok=True)
        pv = {
            "apiVersion": "v1", "kind": "PersistentVolume",
            "metadata": {"name": name, "annotations": {"pv.kubernetes.io/provisioned-by": PROVISIONER}},
            "spec": {
                "capacity": {"storage": spec.get("resources", {}).get("requests", {}).get("storage", "1Gi")},
                "accessModes": spec.get("accessModes") or ["ReadWriteOnce"],
                "persistentVolumeReclaimPolicy": "Delete", "storageClassName": spec["storageClassName"],
                "hostPath": {"path": str(path), "type": "DirectoryOrCreate"},
                "claimRef": {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "namespace": meta["namespace"],
                             "name": meta["name"], "uid": meta["uid"]},
            },
        }  # fmt: skip
        with contextlib.suppress(ApiError):
            await self.api.request("POST", "/api/v1/persistentvolumes", pv)

    # -- container logs ----------------------------------------------------------------------

    async def container_logs(self, request: web.Request) -> web.StreamResponse:
        ns, pod, container = (request.match_info[k] for k in ("ns", "pod", "container"))
        rt = next((r for r in self.pods.values() if r.key == (ns, pod)), None)
        q = request.query
        source = None
        if rt is not None:
            source = (rt.previous if q.get("previous") == "true" else rt.logs).get(container)
        if source is None:
            return web.Response(
                status=404, text=f"container {container} of pod {ns}/{pod} not found\n"
            )
        tail = int(q["tailLines"]) if "tailLines" in q else None
        since = float(q["sinceSeconds"]) if "sinceSeconds" in q else None
        limit = int(q["limitBytes"]) if "limitBytes" in q else None
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        sent = 0
        async for line in source.read(
            q.get("follow") == "true", tail, since, q.get("timestamps") == "true"
        ):
            if limit is not None and sent + len(line) > limit:
                await response.write(line[: limit - sent])
                break
            await response.write(line)
            sent += len(line)
        await response.write_eof()
        return response

    async def serve_logs(self) -> None:
        app = web.Application()
        app.router.add_get("/containerLogs/{ns}/{pod}/{container}", self.container_logs)
        app.router.add_get("/healthz", lambda _: web.Response(text="ok"))
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=self.config["ca"])
        context.load_cert_chain(self.config["serving_cert"], self.config["serving_key"])
        context.verify_mode = ssl.CERT_REQUIRED
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        for port in self.ports.values():
            await web.TCPSite(runner, self.config["host_ip"], port, ssl_context=context).start()

    # -- main --------------------------------------------------------------------------------

    async def main(self) -> None:
        await self.api.start()
        await self.serve_logs()
        await self.register()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        tasks = [
            asyncio.create_task(self.leases()),
            asyncio.create_task(self.hosts_writer()),
            asyncio.create_task(self.api.watch("/api/v1/pods", self.on_pod)),
            asyncio.create_task(self.api.watch("/api/v1/persistentvolumeclaims", self.on_claim)),
            asyncio.create_task(self.api.watch("/api/v1/services", self.on_service)),
            asyncio.create_task(
                self.api.watch(f"/api/v1/nodes?labelSelector={ADOPT_LABEL}", self.on_node)
            ),
        ]
        print("node agent ready", flush=True)
        await stop.wait()
        for task in tasks:
            task.cancel()
        for rt in list(self.pods.values()):
            for p in rt.procs.values():
                procs.signal_tree(p.pid, signal.SIGKILL)
            await self._cleanup(rt)


def main() -> None:
    config = json.loads(Path(sys.argv[1]).read_text())
    asyncio.run(NodeAgent(config).main())


if __name__ == "__main__":
    main()
