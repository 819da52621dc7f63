"""One user floods the jobs service; how much slower are another user's requests? (Run by
`make bench`; not a test.)

Starts a real hub in local mode with its default per-user limits; alice and bob each start a
server. Bob's requests (his job, his job list, his job's logs) are timed unloaded, then while
alice floods: log follows opened and held as fast as 4 threads can (past her limit each is a
429), submits in a loop (past her queue limit each is a 429), 8 MiB bodies, and her job list
read as fast as 4 threads can (past her request rate, each waits or is a 429). Prints bob's
median and p95 latency, and their ratio to his unloaded latency measured just before in the
same run, for each run and over all runs, with the machine's load average (a busy machine
stretches both) and the CPU the jobs service used under the flood.
`RUNS=5 FLOOD=follows,gets` runs five times with those parts of the flood only;
`PROFILE=out.txt` records the jobs service under the first run's flood with py-spy (PyPI; run
as root), as collapsed stacks.
"""

from __future__ import annotations

import base64
import multiprocessing
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event
from pathlib import Path
from urllib.parse import urlsplit

import psutil
import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hubflow.launcher.payload import cell_payload  # noqa: E402
from tests.conftest import TEST_PROFILES  # noqa: E402
from tests.helpers.hubclient import HubClient, HubProcess  # noqa: E402

#: Runs, and which parts of the flood (FLOOD=follows,submits), from the environment.
RUNS = int(os.environ.get("RUNS", "3"))
SAMPLES = 60


class User:
    """The jobs API as one user, over a session of its own."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        self.url, self.headers, self.session = url, headers, requests.Session()

    @classmethod
    def started(cls, hub: HubProcess, name: str) -> User:
        """The user logged in, with a server started and a token of their own."""
        client = HubClient(hub, name).login()
        client.spawn({"profile": "cpu-small"})
        return cls(hub.jobs_url, {"Authorization": f"token {client.new_token()}"})

    def call(self, method: str, path: str, **kwargs: object) -> requests.Response:
        return self.session.request(
            method, self.url + path, headers=self.headers, timeout=60, **kwargs
        )

    def submit(self, code: str) -> requests.Response:
        payload = base64.b64encode(cell_payload(code, {}).dumps()).decode()
        return self.call("POST", "api/jobs", json={"payload": payload, "framework": "python"})


def bob_latencies(bob: User, job_id: str) -> list[float]:
    """Bob's requests, one after another: his job, his list, his job's logs."""
    paths = [f"api/jobs/{job_id}", "api/jobs", f"api/jobs/{job_id}/logs"]
    times = []
    for i in range(SAMPLES):
        start = time.perf_counter()
        r = bob.call("GET", paths[i % len(paths)])
        times.append(time.perf_counter() - start)
        assert r.status_code == 200, r.text
    return times


def flood(alice: User, job_id: str, stop: Event, results: Queue[dict[str, int]]) -> None:
    """Alice's flood, in threads of a process of its own (bob's timings do not wait for this
    client's GIL): log follows opened and held (raw sockets, so each costs the service a
    connection), submits, 8 MiB bodies, and her job list read as fast as 4 threads can. Puts
    what she was answered in `results`."""
    counts = _Counter()
    url = urlsplit(alice.url)
    request = (
        f"GET {url.path}api/jobs/{job_id}/logs?follow=1 HTTP/1.1\r\nHost: {url.netloc}\r\n"
        f"Authorization: {alice.headers['Authorization']}\r\n\r\n"
    ).encode()
    big = b'{"payload": "' + b"A" * (8 * 2**20) + b'"}'
    held: list[socket.socket] = []

    def follows() -> None:
        while not stop.is_set():
            connection = socket.create_connection((url.hostname, url.port), timeout=30)
            connection.sendall(request)
            status = connection.recv(64).split(b" ")[1:2]
            counts[status[0].decode() if status else "closed"] += 1
            if status == [b"200"] and len(held) < 64:
                held.append(connection)
            else:
                connection.close()

    def submits() -> None:
        session = User(alice.url, alice.headers)
        while not stop.is_set():
            counts[f"submit {session.submit('x = 1').status_code}"] += 1
            counts[f"body {session.call('POST', 'api/jobs', data=big).status_code}"] += 1

    def gets() -> None:
        session = User(alice.url, alice.headers)
        while not stop.is_set():
            counts[f"get {session.call('GET', 'api/jobs').status_code}"] += 1

    kinds = os.environ.get("FLOOD", "follows,submits,gets").split(",")
    threads = [
        threading.Thread(target=work, daemon=True)
        for kind, work, count in (
            ("follows", follows, 4),
            ("submits", submits, 2),
            ("gets", gets, 4),
        )
        for _ in range(count)
        if kind in kinds
    ]
    for thread in threads:
        thread.start()
    stop.wait()
    for thread in threads:
        thread.join(timeout=60)
    for connection in held:
        connection.close()
    results.put(dict(counts))


def p95(values: list[float]) -> float:
    return sorted(values)[int(0.95 * (len(values) - 1))]


def wakeup_delay() -> float:
    """How late a process that sleeps 1 ms runs again (median of 50, seconds): the wait for a
    CPU that every request's handling also has on this machine."""
    late = []
    for _ in range(50):
        start = time.perf_counter()
        time.sleep(0.001)
        late.append(time.perf_counter() - start - 0.001)
    return statistics.median(late)


def load() -> str:
    """The machine's load average over 1, 5 and 15 minutes, and its CPUs."""
    one, five, fifteen = os.getloadavg()
    return f"load {one:.1f} {five:.1f} {fifteen:.1f} on {os.cpu_count()} CPUs"


def jobs_service(hub: HubProcess) -> psutil.Process:
    """The jobs service's process: the one listening on its port."""
    for connection in psutil.net_connections("tcp"):
        if connection.laddr and connection.laddr.port == hub.jobs_port and connection.pid:
            return psutil.Process(connection.pid)
    raise RuntimeError("no process listens on the jobs service's port")


def profiler(service: psutil.Process, seconds: int) -> subprocess.Popen[bytes] | None:
    """py-spy recording the service for `seconds`, when PROFILE names where to write."""
    out = os.environ.get("PROFILE")
    if not out:
        return None
    command = ["py-spy", "record", "-p", str(service.pid), "-d", str(seconds), "-r", "200"]
    return subprocess.Popen([*command, "-f", "raw", "-o", out, "--nonblocking"])


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="hubflow-flood-") as tmp:
        hub = HubProcess(data_dir=Path(tmp) / "data", profiles=[str(TEST_PROFILES)])
        hub.start()
        try:
            alice, bob = User.started(hub, "alice"), User.started(hub, "bob")
            bob_job = bob.submit("print('bob')").json()["id"]
            service = jobs_service(hub)
            time.sleep(5)
            ratios, p95_ratios = [], []
            for run in range(1, RUNS + 1):
                machine = load()
                quiet_wakeup = wakeup_delay()
                quiet = bob_latencies(bob, bob_job)
                code = "import time\nfor i in range(10**6):\n    print(i, flush=True)\n    time.sleep(0.01)"
                alice_job = alice.submit(code).json()["id"]
                processes = multiprocessing.get_context("fork")
                stop, results = processes.Event(), processes.Queue()
                flooder = processes.Process(target=flood, args=(alice, alice_job, stop, results))
                flooder.start()
                time.sleep(3)  # the flood under way
                spy = profiler(service, 10) if run == 1 else None
                cpu_before, began = sum(service.cpu_times()[:2]), time.monotonic()
                loaded = bob_latencies(bob, bob_job)
                cpu = (sum(service.cpu_times()[:2]) - cpu_before) / (time.monotonic() - began)
                loaded_wakeup = wakeup_delay()
                stop.set()
                counts = results.get(timeout=120)
                flooder.join()
                for job in alice.call("GET", "api/jobs").json()["jobs"]:
                    alice.call("POST", f"api/jobs/{job['id']}/cancel")
                if spy is not None:
                    spy.wait()
                ratio = statistics.median(loaded) / statistics.median(quiet)
                ratios.append(ratio)
                p95_ratios.append(p95(loaded) / p95(quiet))
                print(
                    f"run {run} ({machine}): bob median {statistics.median(quiet) * 1000:.1f} ms "
                    f"unloaded, {statistics.median(loaded) * 1000:.1f} ms under the flood "
                    f"(x{ratio:.2f}); p95 {p95(quiet) * 1000:.1f} -> {p95(loaded) * 1000:.1f} ms "
                    f"(x{p95_ratios[-1]:.2f}); jobs service CPU {cpu:.0%} under the flood; "
                    f"a 1 ms sleep wakes {quiet_wakeup * 1000:.2f} ms late unloaded, "
                    f"{loaded_wakeup * 1000:.2f} ms under the flood; "
                    f"alice's flood: {dict(sorted(counts.items()))}",
                    flush=True,
                )
            print(
                f"bob's median latency under alice's flood: x{statistics.mean(ratios):.2f} "
                f"unloaded (median of runs x{statistics.median(ratios):.2f}; runs "
                f"{', '.join(f'x{r:.2f}' for r in ratios)}; target at most x2); p95 "
                f"x{statistics.median(p95_ratios):.2f} (median of runs); {load()}"
            )
        finally:
            hub.kill_everything()


class _Counter(dict[str, int]):
    """Counts that start at 0, shared by the flood's threads (dict updates are atomic enough
    for a report)."""

    def __missing__(self, key: str) -> int:
        return 0


if __name__ == "__main__":
    main()
