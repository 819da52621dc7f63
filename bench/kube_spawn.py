"""Kubernetes spawn benchmark on the real test control plane (run by `make bench`; not a test).

One run starts the real test cluster (tests/kube/cluster: kube-apiserver, etcd, controllers,
scheduler; the node agent runs pods as local processes) with two large nodes, and two "hubs":
worker processes of this script, each with one spawner class in a namespace of its own, talking
as the chart's hub ServiceAccount of that namespace. Plain KubeSpawner, configured by hand for
the same pod as hubflow's `small-cpu` profile, is the reference every figure is compared with:

1. spawn time (start() to the server answering over HTTP), PAIRS pairs, each a plain spawn and
   a hubflow spawn in alternating order, a fresh user (and workspace PVC) each time; the medians
   and the spread of the per-pair ratio (p10-p90 and a bootstrap interval of its median);
2. API requests per spawn, as the API server's audit log saw them from each hub's account
   (start and stop, by verb, resource and status), apart from the shared pod and event watches
   (a hub's, not a spawn's), whose rate is shown on its own;
3. CONCURRENT spawns at once with each spawner, of new users (their workspace PVCs provisioned
   during the burst) and again of the same users (PVCs bound): p50, p95 and max spawn time,
   failed spawns and why, and the CPU and memory of the spawning process.

Pods run a tiny HTTP server instead of jupyterhub-singleuser, so the figures are the spawners',
the API server's and the node agent's, not JupyterLab's start-up.
Usage: bench/kube_spawn.py [--pairs 40] [--concurrent 200]   (needs root, as the test cluster)
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any, TextIO

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

KINDS = ("plain", "hubflow")
#: Two nodes with room for every pod of a burst (small-cpu asks 0.5 CPU and 1G each).
NODES = [
    {"name": f"bench-{i}", "cpu": "256", "memory": "1Ti", "pods": 250, "gpus": 0,
     "labels": {}, "taints": []}
    for i in (1, 2)
]  # fmt: skip
#: The server each pod runs: answers GET / with 200 on the port the spawner gives it.
SERVER = (
    "import os, urllib.parse, http.server as h;"
    "port = urllib.parse.urlparse(os.environ['JUPYTERHUB_SERVICE_URL']).port;"
    "h.ThreadingHTTPServer(('0.0.0.0', port), h.SimpleHTTPRequestHandler).serve_forever()"
)
#: Plain KubeSpawner's settings for the pod hubflow's `small-cpu` profile makes (image, CPU,
#: memory, workspace PVC and its mount, user and security context). Memory in bytes: hubflow
#: reads "1G" as Kubernetes does (10^9), KubeSpawner's own setting as 2^30.
PLAIN_SETTINGS: dict[str, Any] = {
    "image": "hubflow/jupyterlab:latest",
    "cpu_guarantee": 0.5, "cpu_limit": 1.0, "mem_guarantee": 10**9, "mem_limit": 2 * 10**9,
    "storage_pvc_ensure": True, "storage_capacity": "10Gi",
    "pvc_name_template": "workspace-{username}",
    "volumes": [{"name": "workspace", "persistentVolumeClaim": {"claimName": "{pvc_name}"}}],
    "volume_mounts": [{"name": "workspace", "mountPath": "/home/jovyan"}],
    "uid": 1000, "gid": 100, "fs_gid": 100, "slug_scheme": "safe",
    "automount_service_account_token": False, "allow_privilege_escalation": False,
    "pod_security_context": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
    "container_security_context": {"capabilities": {"drop": ["ALL"]}},
}  # fmt: skip
#: The audit policy: every request of the two hubs' accounts, at Metadata level, nothing else.
AUDIT_POLICY = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "omitStages": ["RequestReceived"],
    "rules": [
        {"level": "Metadata", "userGroups": [f"system:serviceaccounts:bench-{k}" for k in KINDS]},
        {"level": "None"},
    ],
}


# -- the worker: one hub's spawner, driven over stdin/stdout ---------------------------------


def make_spawner(kind: str, name: str, namespace: str) -> Any:
    """A spawner of `kind` for user `name`, as a hub would make it."""
    from types import SimpleNamespace

    from jupyterhub.objects import Hub
    from kubespawner import KubeSpawner

    from hubflow.hub.settings import DEFAULT_PROFILES
    from hubflow.spawner.kubernetes import HubflowKubeSpawner

    user = SimpleNamespace(
        name=name, id=1, url=f"/user/{name}/", admin=False, groups=[], settings={},
        spawners={}, escaped_name=name,
    )  # fmt: skip
    common = {
        "_mock": True, "user": user, "hub": Hub(), "namespace": namespace, "port": 8888,
        "cmd": [sys.executable, "-c", SERVER], "start_timeout": 900, "http_timeout": 300,
        # Both hubs alike: a burst on 2 cores answers slower than the default 3 s per request.
        "k8s_api_request_timeout": 60, "k8s_api_request_retry_timeout": 300,
    }  # fmt: skip
    if kind == "hubflow":
        spawner = HubflowKubeSpawner(**common)
        spawner.profile_paths = [str(DEFAULT_PROFILES)]
        spawner.user_options = {"profile": "small-cpu"}
    else:
        spawner = KubeSpawner(**common, **PLAIN_SETTINGS)
    spawner.api_token = "token"
    return spawner


async def timed_spawn(spawner: Any, session: Any) -> float | str:
    """Seconds from start() to the server answering, or why the spawn failed."""
    import aiohttp

    began = time.perf_counter()
    try:
        url = await spawner.start()
    except Exception as error:  # noqa: BLE001 (a failed spawn is a result to report)
        return f"{type(error).__name__}: {error}"
    while True:
        try:
            async with session.get(url) as response:
                if response.status == 200:
                    return time.perf_counter() - began
        except aiohttp.ClientConnectionError:
            pass
        await asyncio.sleep(0.05)


def pod_shape(spawner: Any) -> dict[str, Any]:
    """What makes the pod's cost: image, resources, volumes, security (the user's name out)."""
    pod = spawner.pod_reflector.pods[f"{spawner.namespace}/{spawner.pod_name}"]
    spec = pod["spec"]
    container = spec["containers"][0]
    shape = {
        "image": container["image"],
        "resources": container.get("resources"),
        "volumeMounts": container.get("volumeMounts"),
        "securityContext": container.get("securityContext"),
        "pod securityContext": spec.get("securityContext"),
        "volumes": spec.get("volumes"),
        "automountServiceAccountToken": spec.get("automountServiceAccountToken"),
    }
    return json.loads(json.dumps(shape).replace(spawner.user.name, "{user}"))


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def worker(kind: str, namespace: str, proto: TextIO) -> None:
    """Answer the driver's commands, one JSON line each: spawn a list of users at once, or stop
    every running server."""
    import aiohttp
    from kubespawner import KubeSpawner

    running: list[Any] = []
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    async with aiohttp.ClientSession() as session:
        while line := await reader.readline():
            command = json.loads(line)
            began, rss, cpu = time.time(), rss_kib(), time.process_time()
            answer: dict[str, Any] = {}
            if "spawn" in command:
                spawners = [make_spawner(kind, name, namespace) for name in command["spawn"]]
                running += spawners
                results = await asyncio.gather(*(timed_spawn(s, session) for s in spawners))
                done = [s for s, r in zip(spawners, results, strict=True) if not isinstance(r, str)]
                answer = {
                    "seconds": [r for r in results if not isinstance(r, str)],
                    "failed": [r for r in results if isinstance(r, str)],
                    "shape": pod_shape(done[0]) if done else None,
                    "rss_kib": rss_kib() - rss,
                }
            else:
                await asyncio.gather(*(s.stop(now=True) for s in running))
                running.clear()
            answer.update(began=began, ended=time.time(), cpu_s=time.process_time() - cpu)
            proto.write(json.dumps(answer) + "\n")
            proto.flush()
    await KubeSpawner._stop_all_reflectors()


# -- the driver ------------------------------------------------------------------------------


class HubWorker:
    """A worker process: one spawner class, in its namespace, as that namespace's hub account."""

    def __init__(self, kind: str, kubeconfig: Path, log: Path) -> None:
        self.kind = kind
        env = {**os.environ, "KUBECONFIG": str(kubeconfig), "PYTHONPATH": str(ROOT)}
        env.pop("KUBERNETES_SERVICE_HOST", None)
        self.log = log
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--worker", kind, f"bench-{kind}"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log.open("ab"), env=env,
            text=True,
        )  # fmt: skip

    def call(self, command: dict[str, Any]) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            tail = self.log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"the {self.kind} worker died:\n{tail}")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def spawn(self, names: list[str]) -> dict[str, Any]:
        return self.call({"spawn": names})

    def stop(self) -> dict[str, Any]:
        return self.call({"stop": True})

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def percentile(values: list[float], share: float) -> float:
    """The nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def bootstrap_median(values: list[float], rounds: int = 5000) -> tuple[float, float]:
    """A 95% bootstrap interval of the median of `values` (resampled with a fixed seed)."""
    rng = random.Random(0)
    medians = sorted(statistics.median(rng.choices(values, k=len(values))) for _ in range(rounds))
    return medians[int(0.025 * rounds)], medians[int(0.975 * rounds) - 1]


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f} on {os.cpu_count()} cores"


def audit_events(path: Path) -> list[dict[str, Any]]:
    """Each request of the audit log once (a watch is logged when it starts and ends)."""
    seen: dict[str, dict[str, Any]] = {}
    for line in path.read_text().splitlines():
        event = json.loads(line)
        event["at"] = datetime.datetime.fromisoformat(event["requestReceivedTimestamp"]).timestamp()
        seen.setdefault(event["auditID"], event)
    return list(seen.values())


def is_shared_watch(event: dict[str, Any]) -> bool:
    """A request of the hub's shared pod and event watches (KubeSpawner's reflectors)."""
    uri = event["requestURI"]
    return event["verb"] in ("list", "watch") and (
        "singleuser-server" in uri or "involvedObject.kind" in uri
    )


def describe(event: dict[str, Any]) -> str:
    ref = event.get("objectRef", {})
    resource = ref.get("resource", "?") + (
        f"/{ref['subresource']}" if ref.get("subresource") else ""
    )
    code = event.get("responseStatus", {}).get("code", "")
    return f"{event['verb']} {resource}{' (named)' if ref.get('name') else ''} -> {code}"


class Requests:
    """The audit log's requests of one hub's account, cut into windows."""

    def __init__(self, events: list[dict[str, Any]], kind: str) -> None:
        user = f"system:serviceaccount:bench-{kind}:"
        self.events = [e for e in events if e["user"]["username"].startswith(user)]

    def within(self, window: dict[str, Any], shared: bool = False) -> list[dict[str, Any]]:
        return [
            e for e in self.events
            if window["began"] <= e["at"] <= window["ended"] and is_shared_watch(e) == shared
        ]  # fmt: skip


def report_spawns(pairs: list[dict[str, dict[str, Any]]]) -> None:
    times = {k: [p[k]["spawn"]["seconds"][0] for p in pairs] for k in KINDS}
    ratios = [h / p for h, p in zip(times["hubflow"], times["plain"], strict=True)]
    low, high = bootstrap_median(ratios)
    print(f"\n1. Spawn time, start() to the server answering: {len(pairs)} complete pairs, each a plain and "
          "a hubflow spawn in alternating order, a fresh user each")  # fmt: skip
    for kind, label in (
        ("plain", "plain KubeSpawner (reference)"),
        ("hubflow", "hubflow's spawner"),
    ):
        t = times[kind]
        print(f"  {label:31s} median {statistics.median(t) * 1000:6.0f} ms   "
              f"p10 {percentile(t, 0.1) * 1000:6.0f}   p90 {percentile(t, 0.9) * 1000:6.0f}   "
              f"min {min(t) * 1000:6.0f}   max {max(t) * 1000:6.0f}")  # fmt: skip
    ratio_of_medians = statistics.median(times["hubflow"]) / statistics.median(times["plain"])
    print(f"  hubflow / plain: per-pair ratio median {statistics.median(ratios):.2f}x, "
          f"p10-p90 {percentile(ratios, 0.1):.2f}x-{percentile(ratios, 0.9):.2f}x, "
          f"95% bootstrap interval of the median {low:.2f}x-{high:.2f}x; "
          f"ratio of the medians {ratio_of_medians:.2f}x")  # fmt: skip
    cpu = {k: statistics.median(p[k]["spawn"]["cpu_s"] + p[k]["stop"]["cpu_s"] for p in pairs)
           for k in KINDS}  # fmt: skip
    print(f"  CPU of the spawning process per spawn and stop, median: plain {cpu['plain'] * 1000:.0f} ms, "
          f"hubflow {cpu['hubflow'] * 1000:.0f} ms ({cpu['hubflow'] / cpu['plain']:.2f}x)")  # fmt: skip


def by_kind(events: list[dict[str, Any]]) -> str:
    """`events` counted by verb, resource and status."""
    made = Counter(describe(e) for e in events)
    return ", ".join(f"{n}x {what}" for what, n in sorted(made.items()))


def report_requests(
    pairs: list[dict[str, dict[str, Any]]], warmups: dict[str, dict[str, Any]], audit: Path
) -> None:
    events = audit_events(audit)
    print("\n2. API requests per spawn (the API server's audit log, each hub's ServiceAccount; "
          "start = start() until the server answers, stop = stop(now=True)):")  # fmt: skip
    totals: dict[str, float] = {}
    for kind in KINDS:
        requests = Requests(events, kind)
        counts = {
            phase: [len(requests.within(p[kind][phase])) for p in pairs]
            for phase in ("spawn", "stop")
        }
        totals[kind] = statistics.median(a + b for a, b in zip(*counts.values(), strict=True))
        spread = {
            ph: f"{min(c)}" if min(c) == max(c) else f"{min(c)}-{max(c)}"
            for ph, c in counts.items()
        }
        print(f"  {kind:7s} start {spread['spawn']}, stop {spread['stop']} "
              f"(over {len(pairs)} spawns); one pair's, by verb and resource:")  # fmt: skip
        for phase in ("spawn", "stop"):
            listed = by_kind(requests.within(pairs[-1][kind][phase]))
            print(f"    {'start' if phase == 'spawn' else 'stop'}: {listed}")
        first = requests.within(warmups[kind]["spawn"], shared=True)
        print(f"    the hub's first start also opens its shared watches: {by_kind(first)}")
        began, ended = pairs[0][kind]["spawn"]["began"], pairs[-1][kind]["stop"]["ended"]
        shared = requests.within({"began": began, "ended": ended}, shared=True)
        rate = len(shared) / (ended - began) * 60
        print(f"    then, per hub and not per spawn, {rate:.1f} requests/min: {by_kind(shared)}")
    print(f"  hubflow / plain: {totals['hubflow'] / totals['plain']:.2f}x "
          f"({totals['hubflow']} against {totals['plain']} requests per spawn and stop)")  # fmt: skip


#: The bursts, in this order (ABBA, so neither spawner always goes first): new users (each
#: spawn makes the user's workspace PVC, provisioned during the burst), then the same users
#: again (their PVCs bound already).
BURSTS = [("new", "plain"), ("new", "hubflow"), ("returning", "hubflow"), ("returning", "plain")]


def report_bursts(bursts: dict[tuple[str, str], dict[str, Any]], n: int) -> None:
    print(
        f"\n3. {n} concurrent spawns, each spawner in turn ({', '.join(' '.join(b) for b in BURSTS)}):"
    )
    for users in ("new", "returning"):
        print(f"  {users} users:")
        figures: dict[str, dict[str, float]] = {}
        for kind in KINDS:
            burst = bursts[users, kind]
            s, failed = burst["seconds"], burst["failed"]
            if failed:
                why = Counter(f[:300] for f in failed).most_common(3)
                print(f"    {kind:7s} {len(failed)} of {n} spawns FAILED: "
                      + "; ".join(f"{c}x {w}" for w, c in why))  # fmt: skip
            if not s:
                continue
            figures[kind] = f = {
                "p50": percentile(s, 0.5), "p95": percentile(s, 0.95), "max": max(s),
                "CPU per spawn": burst["cpu_s"] / n, "KiB per server": burst["rss_kib"] / len(s),
            }  # fmt: skip
            print(f"    {kind:7s} {len(s)} answered: p50 {f['p50']:5.1f} s, p95 {f['p95']:5.1f} s, "
                  f"max {f['max']:5.1f} s; spawning process: {f['CPU per spawn'] * 1000:.0f} ms CPU "
                  f"per spawn, {f['KiB per server']:.0f} KiB more memory per running server")  # fmt: skip
        if any(bursts[users, k]["failed"] for k in KINDS) or len(figures) < 2:
            print("    hubflow / plain: not comparable (failed spawns)")
            continue
        ratios = ", ".join(
            f"{k} {figures['hubflow'][k] / figures['plain'][k]:.2f}x"
            for k in ("p50", "p95", "max", "CPU per spawn", "KiB per server")
            if figures["plain"][k]
        )
        print(f"    hubflow / plain: {ratios}")


def run(pairs_wanted: int, concurrent: int) -> None:
    from tests.kube.cluster.controlplane import ControlPlane, build_binaries
    from tests.kube.cluster.hubaccount import hub_kubeconfig

    if os.geteuid() != 0:
        sys.exit("bench/kube_spawn.py needs root, as the real test cluster does (pods' netns)")
    # Stopped by a signal, the cluster still goes down (its bridge, namespaces and number).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    print(f"start: {load()}", flush=True)
    bins = build_binaries()
    with tempfile.TemporaryDirectory(prefix="hubflow-bench-") as tmp:
        work = Path(tmp)
        policy, audit = work / "audit-policy.json", work / "audit.log"
        policy.write_text(json.dumps(AUDIT_POLICY))
        flags = [f"--audit-policy-file={policy}", f"--audit-log-path={audit}",
                 "--audit-log-maxsize=0"]  # fmt: skip
        cp = ControlPlane(work / "cluster", bins, nodes=NODES, apiserver_args=flags)
        hubs: dict[str, HubWorker] = {}
        try:
            began = time.monotonic()
            cp.start(kubeflow=False)
            version = cp.get("/version")["gitVersion"]
            print(f"real control plane {version} up in {time.monotonic() - began:.0f} s "
                  f"(no Kubeflow controllers); {load()}", flush=True)  # fmt: skip
            for kind in KINDS:
                cp.kubectl("create", "namespace", f"bench-{kind}")
                config = hub_kubeconfig(cp, work / f"{kind}.kubeconfig", namespace=f"bench-{kind}")
                hubs[kind] = HubWorker(kind, config, work / f"{kind}-worker.log")
            warmups = {}
            for kind, hub in hubs.items():  # warm up: each hub's watches and connections
                warmups[kind] = {"spawn": hub.spawn([f"{kind}-warmup"]), "stop": hub.stop()}
            shapes = {kind: warmups[kind]["spawn"]["shape"] for kind in KINDS}
            if shapes["plain"] != shapes["hubflow"]:
                print(
                    f"pod shapes differ:\n  plain   {shapes['plain']}\n  hubflow {shapes['hubflow']}"
                )
            else:
                print(f"same pod shape for both: {json.dumps(shapes['plain'])}")
            pairs: list[dict[str, dict[str, Any]]] = []
            for i in range(pairs_wanted):
                pair: dict[str, dict[str, Any]] = {}
                for kind in KINDS if i % 2 else reversed(KINDS):
                    pair[kind] = {
                        "spawn": hubs[kind].spawn([f"{kind}-{i}"]),
                        "stop": hubs[kind].stop(),
                    }
                answers = {k: pair[k]["spawn"] for k in KINDS}
                print(f"  pair {i + 1}/{pairs_wanted}: " + ", ".join(
                    f"{k} {a['seconds'][0] * 1000:.0f} ms" if a["seconds"] else f"{k} FAILED: {a['failed'][0]}"
                    for k, a in answers.items()), flush=True)  # fmt: skip
                if all(a["seconds"] for a in answers.values()):
                    pairs.append(pair)
            print(f"after the pairs: {load()}")
            report_spawns(pairs)
            report_requests(pairs, warmups, audit)
            bursts = {}
            for users, kind in BURSTS:
                print(
                    f"\n{concurrent} {kind} spawns of {users} users at once... ({load()})",
                    flush=True,
                )
                burst = bursts[users, kind] = hubs[kind].spawn(
                    [f"{kind}-burst-{i}" for i in range(concurrent)]
                )
                print(f"  all answered or failed after {burst['ended'] - burst['began']:.1f} s; "
                      f"stopping them; {load()}", flush=True)  # fmt: skip
                hubs[kind].stop()
            report_bursts(bursts, concurrent)
            print(f"\nend: {load()}")
        finally:
            for hub in hubs.values():
                hub.close()
            cp.stop()
            Path(f"/run/hubflow-cluster-{cp.index}.pid").unlink(missing_ok=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=40, help="paired spawns (default 40)")
    parser.add_argument("--concurrent", type=int, default=200, help="spawns at once (default 200)")
    parser.add_argument("--worker", nargs=2, metavar=("KIND", "NAMESPACE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        # The protocol on the real stdout; everything else printed goes to stderr (the log).
        proto = os.fdopen(os.dup(1), "w")
        os.dup2(2, 1)
        kind, namespace = args.worker
        asyncio.run(worker(kind, namespace, proto))
    else:
        run(args.pairs, args.concurrent)


if __name__ == "__main__":
    main()
