"""The simulator as one object: store, API server, controllers, in a thread with its own loop."""

from __future__ import annotations

import asyncio
import json
import secrets
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

import kubernetes.client
import kubernetes.config
import tornado.httpserver
import tornado.netutil

from tests.kube.cluster.hubaccount import runtime_file
from tests.kube.sim.api import Api
from tests.kube.sim.faults import Fault, Faults
from tests.kube.sim.gc import GarbageCollector
from tests.kube.sim.kubeconfig import write_kubeconfig
from tests.kube.sim.kubelet import Kubelet
from tests.kube.sim.nodes import NodeSpec, default_nodes
from tests.kube.sim.operator import TrainingOperator
from tests.kube.sim.resources import Registry, ResourceType, load_yaml_objects
from tests.kube.sim.scheduler import Scheduler
from tests.kube.sim.server import Context, make_app
from tests.kube.sim.store import Store

T = TypeVar("T")
Obj = dict[str, Any]
KUBEFLOW = Path(__file__).resolve().parents[4] / "shared" / "kubeflow"
DEFAULT_CRDS = [KUBEFLOW / "v1-crds", KUBEFLOW / "v2-crds"]
DEFAULT_PRELOAD = [KUBEFLOW / "v2-runtimes"]
NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


def _existing(paths: list[Path]) -> list[Path]:
    """The paths, all of which must exist (the Kubeflow CRDs live in shared/ beside the checkout)."""
    missing = [path for path in paths if not path.exists()]
    if missing:
        raise FileNotFoundError(f"CRD or preload path not found: {missing[0]}")
    return list(paths)


class Simulator:
    """A simulated cluster on 127.0.0.1; start() it, point clients at kubeconfig_path, stop() it."""

    def __init__(
        self,
        data_dir: Path,
        nodes: list[NodeSpec] | None = None,
        crds: list[Path] | None = None,
        preload: list[Path] | None = None,
        port: int = 0,
        host: str = "127.0.0.1",
        token: str | None = None,
        history: int = 1000,
        missing_images: set[str] | None = None,
        bookmark_every: float = 1.0,
        backoff: float = 1.0,
        kubeconfig_path: Path | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.nodes = nodes if nodes is not None else default_nodes()
        self.crds = _existing(DEFAULT_CRDS if crds is None else crds)
        # The stock runtimes and hubflow's own (the chart's), as a cluster with Trainer and the
        # chart installed has them.
        self.preload = _existing([*DEFAULT_PRELOAD, runtime_file()] if preload is None else preload)
        self.host, self.port = host, port
        self.token = token or secrets.token_hex(16)
        self.missing_images = missing_images if missing_images is not None else set()
        self.kubeconfig_path = kubeconfig_path or self.data_dir / "kubeconfig"
        self.faults = Faults()
        self.store = Store(history)
        self.registry = Registry()
        self.api = Api(self.registry, self.store)
        self._bookmark_every, self._backoff = bookmark_every, backoff
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._clients: list[kubernetes.client.ApiClient] = []

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def api_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> Simulator:
        started: Future[None] = Future()
        self._thread = threading.Thread(
            target=self._main, args=(started,), name="k8s-sim", daemon=True
        )
        self._thread.start()
        started.result(timeout=60)
        write_kubeconfig(self.kubeconfig_path, self.api_url, self.token)
        return self

    def _main(self, started: Future[None]) -> None:
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._setup())
        except BaseException as error:  # noqa: BLE001 - handed to start()
            started.set_exception(error)
            self._loop.close()
            return
        started.set_result(None)
        self._loop.run_forever()
        self._loop.close()

    async def _setup(self) -> None:
        self.kubelet = Kubelet(self.api, self.data_dir, self.missing_images, self._backoff)
        self.scheduler = Scheduler(self.api)
        GarbageCollector(self.api)
        TrainingOperator(self.api)
        self._stopping = asyncio.Event()
        crd_type = self.registry.get("apiextensions.k8s.io", "v1", "customresourcedefinitions")
        assert crd_type is not None
        for crd in load_yaml_objects(self.crds):
            self.registry.add_crd(crd)
            crd.pop("status", None)
            self.store.create(crd_type.key, crd)
        for name in NAMESPACES:
            self.api.create(self.resource("namespaces"), "", {"metadata": {"name": name}})
        for node in self.nodes:
            self.api.create(self.resource("nodes"), "", node.to_object())
        for obj in load_yaml_objects(self.preload):
            rtype = self.registry.by_kind(obj["apiVersion"], obj["kind"])
            assert rtype is not None, f"no resource for {obj['apiVersion']} {obj['kind']}"
            self.api.create(
                rtype, obj["metadata"].get("namespace", "default") if rtype.namespaced else "", obj
            )
        self._scheduler_task = asyncio.ensure_future(self.scheduler.run())
        ctx = Context(
            self.api, self.faults, self.kubelet, self.token, self._bookmark_every, self._stopping
        )
        sockets = tornado.netutil.bind_sockets(self.port, self.host)
        self.port = sockets[0].getsockname()[1]
        self._http = tornado.httpserver.HTTPServer(make_app(ctx))
        self._http.add_sockets(sockets)

    def stop(self) -> None:
        """Stop serving and kill every pod process this simulator started."""
        if self._loop is None or self._thread is None:
            return
        for client in self._clients:
            client.close()
        self.call(self._shutdown(), timeout=60)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._loop = None

    async def _shutdown(self) -> None:
        self._stopping.set()
        self._http.stop()
        self._scheduler_task.cancel()
        await self.kubelet.shutdown()
        await asyncio.sleep(0.05)
        await asyncio.wait_for(self._http.close_all_connections(), 10)

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- calls into the loop -----------------------------------------------------------------

    def call(self, work: Any, timeout: float = 30) -> Any:
        """Run a coroutine, or a plain callable, on the simulator's loop and return its result."""
        assert self._loop is not None, "simulator not started"
        if asyncio.iscoroutine(work):
            return asyncio.run_coroutine_threadsafe(work, self._loop).result(timeout)

        async def run() -> Any:
            return work()

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout)

    def resource(self, name: str) -> ResourceType:
        """A resource type by plural, kind or plural.group ("pods", "Pod", "pytorchjobs.kubeflow.org")."""
        plural, _, group = name.partition(".")
        candidates = [
            t for t in self.registry.types.values()
            if not t.view_of and (plural.lower() in (t.plural, t.kind.lower()) and group in ("", t.group))
        ]  # fmt: skip
        if not candidates:
            raise KeyError(name)
        return sorted(candidates, key=lambda t: t.group != "")[0]

    # -- what tests use ----------------------------------------------------------------------

    def client(self) -> kubernetes.client.ApiClient:
        """A sync `kubernetes` ApiClient configured from this simulator's kubeconfig."""
        configuration = kubernetes.client.Configuration()
        kubernetes.config.load_kube_config(
            config_file=str(self.kubeconfig_path), client_configuration=configuration
        )
        client = kubernetes.client.ApiClient(configuration)
        self._clients.append(client)
        return client

    def request(
        self, method: str, path: str, body: Any = None, content_type: str = "application/json"
    ) -> tuple[int, Any]:
        """A raw HTTP call with the bearer token (for what typed clients refuse to send).

        Returns the status code and the parsed JSON body (a watch: the list of its events).
        """
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": content_type}
        request = urllib.request.Request(self.api_url + path, data, headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, _json(response.read())
        except urllib.error.HTTPError as error:
            return error.code, _json(error.read())

    def objects(self, kind: str, namespace: str | None = None) -> list[Obj]:
        """Stored objects of a kind ("pods", "Pod", "events", "pytorchjobs"), for assertions."""
        rtype = self.resource(kind)
        return list(self.call(lambda: self.store.objects(rtype.key, namespace)))

    def get(self, kind: str, namespace: str, name: str) -> Obj | None:
        rtype = self.resource(kind)
        return self.call(
            lambda: self.store.get(rtype.key, namespace if rtype.namespaced else "", name)
        )  # type: ignore[no-any-return]

    def events_for(self, name: str, namespace: str = "default") -> list[Obj]:
        """Core events whose involvedObject has this name, oldest first."""
        return [e for e in self.objects("events", namespace) if e["involvedObject"]["name"] == name]

    def inject(self, verb: str = "*", resource: str = "*", **options: Any) -> Fault:
        """Arm a fault: inject("list", "pods", status=429, times=2); see faults.Fault."""
        return self.faults.add(Fault(verb=verb, resource=resource, **options))

    def compact(self) -> int:
        """Forget the change history (as etcd compaction does); returns the compacted resourceVersion."""
        self.call(self.store.compact)
        return self.store.compacted_rv

    def pod_log(self, namespace: str, name: str, container: str | None = None) -> str:
        def read() -> str:
            runtime = self.kubelet.runtime(namespace, name)
            if runtime is None or not runtime.logs:
                return ""
            log = runtime.logs[container] if container else next(iter(runtime.logs.values()))
            return b"".join(line for _, line in log.lines).decode(errors="replace")

        return str(self.call(read))

    def pod_processes(self) -> list[int]:
        """PIDs of the live container processes (to check nothing leaks)."""
        return list(
            self.call(
                lambda: [
                    p.pid
                    for rt in self.kubelet.pods.values()
                    for p in rt.procs.values()
                    if p.returncode is None
                ]
            )
        )

    def add_node(self, node: NodeSpec) -> Obj:
        return self.call(lambda: self.api.create(self.resource("nodes"), "", node.to_object()))  # type: ignore[no-any-return]

    def wait_for(
        self, predicate: Callable[[], T], timeout: float = 30, interval: float = 0.05
    ) -> T:
        """Poll until predicate() is truthy; return its value or raise TimeoutError."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"condition not met in {timeout}s")
            time.sleep(interval)


def _json(data: bytes) -> Any:
    """One JSON document, or a list of them for newline-delimited watch streams."""
    try:
        return json.loads(data or b"null")
    except ValueError:
        return [json.loads(line) for line in data.splitlines() if line.strip()]
