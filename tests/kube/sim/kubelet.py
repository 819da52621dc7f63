"""The kubelet stand-in: runs each scheduled pod's containers as local processes on 127.0.0.N."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import secrets
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.kube.sim import podenv, procs, volumes
from tests.kube.sim.api import Api
from tests.kube.sim.conditions import set_condition
from tests.kube.sim.events import make_event
from tests.kube.sim.podlogs import ContainerLog
from tests.kube.sim.store import Change, now_iso

Obj = dict[str, Any]
SHIM = Path(__file__).parent / "shim"


class CreateError(Exception):
    """The container cannot be created here (CreateContainerError)."""


@dataclass
class PodRuntime:
    """One pod on a node: its IP, directory, processes, container states and logs."""

    pod: Obj
    ip: str
    dir: Path
    task: asyncio.Task[None] | None = None
    procs: dict[str, asyncio.subprocess.Process] = field(default_factory=dict)
    logs: dict[str, ContainerLog] = field(default_factory=dict)
    statuses: dict[str, Obj] = field(default_factory=dict)
    initialized: bool = False
    terminating: bool = False

    @property
    def uid(self) -> str:
        return str(self.pod["metadata"]["uid"])


class Kubelet:
    """Watches pods bound to nodes and runs them; one kubelet serves all simulated nodes."""

    def __init__(
        self, api: Api, data_dir: Path, missing_images: set[str], backoff: float = 1.0
    ) -> None:
        self.api, self.store = api, api.store
        self.data_dir = data_dir
        self.missing_images = missing_images
        self.backoff = backoff
        self.pods: dict[str, PodRuntime] = {}
        self._pulled: set[tuple[str, str]] = set()
        self._ips = (str(ipaddress.IPv4Address("127.0.0.0") + n) for n in range(2, 2**24 - 1))
        self._free_ips: list[str] = []
        self.store.listeners.append(self._on_change)

    # -- reacting to pod changes -------------------------------------------------------------

    def _on_change(self, change: Change) -> None:
        if change.key != "/pods":
            return
        pod, uid = change.obj, change.obj["metadata"]["uid"]
        loop = asyncio.get_running_loop()
        if change.type == "DELETED":
            if uid in self.pods:
                grace = pod["metadata"].get("deletionGracePeriodSeconds", 1)
                loop.create_task(self.terminate(uid, grace))
        elif "deletionTimestamp" in pod["metadata"]:
            if uid in self.pods:
                loop.create_task(self.terminate(uid, pod["metadata"]["deletionGracePeriodSeconds"]))
            else:
                loop.call_soon(self._remove, pod)
        elif (
            pod["spec"].get("nodeName")
            and uid not in self.pods
            and pod["status"].get("phase") == "Pending"
        ):
            ip = self._free_ips.pop() if self._free_ips else next(self._ips)
            runtime = PodRuntime(pod, ip, self.data_dir / "pods" / uid)
            self.pods[uid] = runtime
            runtime.task = loop.create_task(self._run(runtime))

    def _remove(self, pod: Obj) -> None:
        meta = pod["metadata"]
        current = self.store.get("/pods", meta["namespace"], meta["name"])
        if current and current["metadata"]["uid"] == meta["uid"]:
            self.store.delete("/pods", meta["namespace"], meta["name"])

    # -- status and events -------------------------------------------------------------------

    def _event(
        self, rt: PodRuntime, type_: str, reason: str, message: str, container: str = ""
    ) -> None:
        group = (
            "initContainers"
            if any(c["name"] == container for c in rt.pod["spec"].get("initContainers", []))
            else "containers"
        )
        field_path = f"spec.{group}{{{container}}}" if container else ""
        event = make_event(
            rt.pod, type_, reason, message, "kubelet", rt.pod["spec"]["nodeName"], field_path
        )
        self.api.create(self.api.registry.by_key("/events"), rt.pod["metadata"]["namespace"], event)

    def _publish(self, rt: PodRuntime, phase: str | None = None) -> None:
        meta = rt.pod["metadata"]
        pod = self.store.get("/pods", meta["namespace"], meta["name"])
        if pod is None or pod["metadata"]["uid"] != rt.uid or rt.terminating:
            return
        status = pod["status"]
        status.update(
            {
                "hostIP": "127.0.0.1",
                "hostIPs": [{"ip": "127.0.0.1"}],
                "podIP": rt.ip,
                "podIPs": [{"ip": rt.ip}],
            }
        )
        status.setdefault("startTime", now_iso())
        status["phase"] = phase or status["phase"]
        spec = pod["spec"]
        if spec.get("initContainers"):
            status["initContainerStatuses"] = [
                rt.statuses[c["name"]] for c in spec["initContainers"] if c["name"] in rt.statuses
            ]
        status["containerStatuses"] = [
            rt.statuses[c["name"]] for c in spec["containers"] if c["name"] in rt.statuses
        ]
        ready = [s for s in status["containerStatuses"] if s["ready"]]
        unready = sorted(
            c["name"] for c in spec["containers"] if not rt.statuses.get(c["name"], {}).get("ready")
        )
        set_condition(pod, {"type": "PodReadyToStartContainers", "status": "True"})
        set_condition(pod, {"type": "Initialized", "status": "True" if rt.initialized else "False"})
        for kind in ("ContainersReady", "Ready"):
            if len(ready) == len(spec["containers"]):
                set_condition(pod, {"type": kind, "status": "True"})
            elif status["phase"] in ("Succeeded", "Failed"):
                set_condition(pod, {"type": kind, "status": "False", "reason": "PodCompleted"})
            else:
                message = f"containers with unready status: [{' '.join(unready)}]"
                set_condition(
                    pod,
                    {
                        "type": kind,
                        "status": "False",
                        "reason": "ContainersNotReady",
                        "message": message,
                    },
                )
        rt.pod = self.store.update("/pods", pod)

    def _set_state(
        self, rt: PodRuntime, container: Obj, state: Obj, ready: bool = False, restarts: int = 0
    ) -> None:
        name = container["name"]
        old = rt.statuses.get(name, {})
        last = (
            old.get("state", {})
            if "terminated" in old.get("state", {}) and "terminated" not in state
            else old.get("lastState", {})
        )
        rt.statuses[name] = {
            "name": name,
            "image": container.get("image", ""),
            "imageID": f"sim://{container.get('image', '')}",
            "ready": ready,
            "restartCount": restarts,
            "started": "running" in state,
            "state": state,
            "lastState": last,
            **({"containerID": old["containerID"]} if "containerID" in old else {}),
        }

    # -- running a pod -----------------------------------------------------------------------

    async def _run(self, rt: PodRuntime) -> None:
        spec = rt.pod["spec"]
        for container in spec.get("initContainers", []) + spec["containers"]:
            self._set_state(
                rt,
                container,
                {
                    "waiting": {
                        "reason": "PodInitializing"
                        if spec.get("initContainers")
                        else "ContainerCreating"
                    }
                },
            )
        self._publish(rt)
        volume_dirs = await self._mount(rt)
        for container in spec.get("initContainers", []):
            if await self._container(rt, container, volume_dirs, init=True) != 0:
                self._publish(rt, "Failed")
                return
        rt.initialized = True
        self._publish(rt)
        codes = await asyncio.gather(
            *(self._container(rt, c, volume_dirs, init=False) for c in spec["containers"])
        )
        self._publish(rt, "Succeeded" if all(code == 0 for code in codes) else "Failed")

    async def _mount(self, rt: PodRuntime) -> dict[str, Path]:
        reported = ""
        while True:
            try:
                return volumes.realise(self.store, self.data_dir, rt.pod, rt.dir)
            except volumes.MountError as error:
                message = f"MountVolume.SetUp failed: {error}"
                if message != reported:
                    self._event(rt, "Warning", "FailedMount", message)
                    reported = message
            await asyncio.sleep(self.backoff)

    async def _pull(self, rt: PodRuntime, container: Obj) -> None:
        """Image events; a missing image waits in ImagePullBackOff until it is no longer missing."""
        image, name, node = (
            container.get("image", ""),
            container["name"],
            rt.pod["spec"]["nodeName"],
        )
        if (node, image) in self._pulled and container.get("imagePullPolicy") != "Always":
            self._event(
                rt,
                "Normal",
                "Pulled",
                f'Container image "{image}" already present on machine',
                name,
            )
            return
        self._event(rt, "Normal", "Pulling", f'Pulling image "{image}"', name)
        reported = False
        while "doesnotexist" in image or image in self.missing_images:
            if not reported:
                detail = f'rpc error: code = NotFound desc = failed to pull and unpack image "{image}": failed to resolve reference "{image}": {image}: not found'
                self._set_state(
                    rt, container, {"waiting": {"reason": "ErrImagePull", "message": detail}}
                )
                self._publish(rt)
                self._event(
                    rt, "Warning", "Failed", f'Failed to pull image "{image}": {detail}', name
                )
                self._event(rt, "Warning", "Failed", "Error: ErrImagePull", name)
                await asyncio.sleep(self.backoff)
                self._set_state(
                    rt,
                    container,
                    {
                        "waiting": {
                            "reason": "ImagePullBackOff",
                            "message": f'Back-off pulling image "{image}"',
                        }
                    },
                )
                self._publish(rt)
                self._event(rt, "Normal", "BackOff", f'Back-off pulling image "{image}"', name)
                self._event(rt, "Warning", "Failed", "Error: ImagePullBackOff", name)
                reported = True
            await asyncio.sleep(self.backoff)
        self._pulled.add((node, image))
        self._event(
            rt,
            "Normal",
            "Pulled",
            f'Successfully pulled image "{image}" in 0s (0s including waiting). Image size: 0 bytes.',
            name,
        )

    def _prepare(
        self, rt: PodRuntime, container: Obj, volume_dirs: dict[str, Path]
    ) -> tuple[list[str], dict[str, str], Path]:
        # args without command: the image's entrypoint would run them; most ML images' entrypoints
        # (none, or tini --) run args as the command, so the args are the command here.
        words = container.get("command", []) + container.get("args", [])
        if not words:
            raise CreateError(
                "the simulator runs a container's command and args; this container has neither "
                "(an image's entrypoint and cmd cannot run here)"
            )
        mounts = volumes.container_mounts(container, volume_dirs)
        pod_env = podenv.container_env(self.store, rt.pod, container)
        argv = [volumes.substitute(podenv.expand(a, pod_env), mounts) for a in words]
        home = rt.dir / "home"
        home.mkdir(parents=True, exist_ok=True)
        env = {
            "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            "HOME": str(home),
            "HOSTNAME": rt.pod["metadata"]["name"],
            "LANG": "C.UTF-8",
        }
        env.update({k: volumes.substitute(v, mounts) for k, v in pod_env.items()})
        env["SIM_POD_IP"] = rt.ip
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SHIM), env.get("PYTHONPATH")]))
        workdir = (
            Path(volumes.substitute(container["workingDir"], mounts))
            if container.get("workingDir")
            else rt.dir / "root"
        )
        workdir.mkdir(parents=True, exist_ok=True)
        return argv, env, workdir

    async def _container(
        self, rt: PodRuntime, container: Obj, volume_dirs: dict[str, Path], init: bool
    ) -> int | None:
        """Run a container to its end, restarting it as restartPolicy says; its last exit code."""
        name, policy = container["name"], rt.pod["spec"].get("restartPolicy", "Always")
        restarts = 0
        await self._pull(rt, container)
        while True:
            try:
                argv, env, workdir = self._prepare(rt, container, volume_dirs)
            except (podenv.ConfigError, CreateError) as error:
                reason = (
                    "CreateContainerConfigError"
                    if isinstance(error, podenv.ConfigError)
                    else "CreateContainerError"
                )
                self._set_state(
                    rt,
                    container,
                    {"waiting": {"reason": reason, "message": str(error)}},
                    restarts=restarts,
                )
                self._publish(rt)
                self._event(rt, "Warning", "Failed", f"Error: {error}", name)
                await self._wait_for_config(rt, container, volume_dirs)
                continue
            code = await self._execute(rt, container, argv, env, workdir, restarts, init)
            restart = policy == "Always" and not init or (policy != "Never" and code != 0)
            if not restart:
                return code
            restarts += 1
            delay = min(self.backoff * 2 ** (restarts - 1), 300)
            meta = rt.pod["metadata"]
            message = f"back-off {delay:g}s restarting failed container={name} pod={meta['name']}_{meta['namespace']}({meta['uid']})"
            self._set_state(
                rt,
                container,
                {"waiting": {"reason": "CrashLoopBackOff", "message": message}},
                restarts=restarts,
            )
            self._publish(rt)
            self._event(
                rt,
                "Warning",
                "BackOff",
                f"Back-off restarting failed container {name} in pod {meta['name']}_{meta['namespace']}({meta['uid']})",
                name,
            )
            await asyncio.sleep(delay)

    async def _wait_for_config(
        self, rt: PodRuntime, container: Obj, volume_dirs: dict[str, Path]
    ) -> None:
        """Retry until a missing ConfigMap/Secret appears (a missing command never does)."""
        while True:
            await asyncio.sleep(self.backoff)
            with contextlib.suppress(podenv.ConfigError):
                self._prepare(rt, container, volume_dirs)
                return

    async def _execute(
        self,
        rt: PodRuntime,
        container: Obj,
        argv: list[str],
        env: dict[str, str],
        workdir: Path,
        restarts: int,
        init: bool,
    ) -> int:
        name = container["name"]
        log = rt.logs.setdefault(name, ContainerLog())
        await log.reopen()
        container_id = f"sim://{secrets.token_hex(16)}"
        self._event(rt, "Normal", "Created", f"Created container: {name}", name)
        started = now_iso()
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv, cwd=workdir, env=env, stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        except OSError as error:
            message = f'failed to create containerd task: failed to create shim task: OCI runtime create failed: exec: "{argv[0]}": {error.strerror}: unknown'
            state = {
                "terminated": {
                    "exitCode": 128,
                    "reason": "StartError",
                    "message": message,
                    "startedAt": started,
                    "finishedAt": now_iso(),
                    "containerID": container_id,
                }
            }
            self._set_state(rt, container, state, restarts=restarts)
            self._publish(rt)
            self._event(rt, "Warning", "Failed", f"Error: {message}", name)
            await log.close()
            return 128
        rt.procs[name] = proc
        self._set_state(
            rt, container, {"running": {"startedAt": started}}, ready=True, restarts=restarts
        )
        rt.statuses[name]["containerID"] = container_id
        self._publish(rt, None if init else "Running")
        self._event(rt, "Normal", "Started", f"Started container {name}", name)
        assert proc.stdout is not None
        async for line in proc.stdout:
            await log.append(line)
        code = await proc.wait()
        code = 128 - code if code < 0 else code
        await log.close()
        state = {
            "terminated": {
                "exitCode": code,
                "reason": "Completed" if code == 0 else "Error",
                "startedAt": started,
                "finishedAt": now_iso(),
                "containerID": container_id,
            }
        }
        self._set_state(rt, container, state, restarts=restarts)
        self._publish(rt)
        return code

    # -- stopping ----------------------------------------------------------------------------

    async def terminate(self, uid: str, grace: float) -> None:
        """SIGTERM the pod's processes, SIGKILL what is left after `grace`, then drop the pod."""
        rt = self.pods.get(uid)
        if rt is None or rt.terminating:
            return
        if rt.task:
            rt.task.cancel()
        live = {name: p for name, p in rt.procs.items() if p.returncode is None}
        for name in live:
            self._event(rt, "Normal", "Killing", f"Stopping container {name}", name)
        rt.terminating = True
        known = {pid for p in live.values() for pid in procs.signal_tree(p.pid, signal.SIGTERM)}
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(p.returncode is None for p in live.values()):
            await asyncio.sleep(0.05)
        await self._kill(rt, known)
        self._remove(rt.pod)

    async def _kill(self, rt: PodRuntime, known: set[int] | None = None) -> None:
        for proc in rt.procs.values():
            procs.signal_tree(proc.pid, signal.SIGKILL, known)
        for proc in rt.procs.values():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(proc.wait(), 5)
        for log in rt.logs.values():
            await log.close()
        if self.pods.pop(rt.uid, None) is not None:
            self._free_ips.append(rt.ip)

    async def shutdown(self) -> None:
        """Kill every pod process (teardown)."""
        for rt in list(self.pods.values()):
            rt.terminating = True
            if rt.task:
                rt.task.cancel()
            await self._kill(rt)

    def runtime(self, namespace: str, name: str) -> PodRuntime | None:
        return next(
            (
                rt
                for rt in self.pods.values()
                if (rt.pod["metadata"]["namespace"], rt.pod["metadata"]["name"])
                == (namespace, name)
            ),
            None,
        )
