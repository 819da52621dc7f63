"""Culling with a real hub: idle-culler through hubflow's per-profile policies, fed by the real
activity of users' servers; a warning on the hub's pages first; servers with jobs are kept."""

from __future__ import annotations

import contextlib
import html
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
import websocket

from tests.helpers.hubclient import HubClient, HubProcess
from tests.helpers.kernel import KernelClient
from tests.integration.test_jobs_api import Jobs

PROFILES = Path(__file__).parent / "profiles" / "culling_profiles.yaml"

#: Seconds-long rhythms, so a test sees it all happen; the CPU default is far away.
CULLING_ENV = {
    "HUBFLOW_GPUS": "0:NVIDIA-A100-SXM4-80GB",
    "HUBFLOW_CULL_EVERY": "1",
    "HUBFLOW_ACTIVITY_INTERVAL": "1",
    "HUBFLOW_CULL_WARN_BEFORE": "12",
    "HUBFLOW_CULL_IDLE_TIMEOUT": "1h",
    "HUBFLOW_CULL_GPU_IDLE_TIMEOUT": "20s",
    "HUBFLOW_CULL_MAX_AGE": "1d",
}


@pytest.fixture
def hub(hub_factory: Callable[..., HubProcess]) -> HubProcess:
    return hub_factory(profiles=[str(PROFILES)], extra_env=CULLING_ENV)


def running(client: HubClient, name: str) -> bool:
    model = client.server(name)
    return bool(model and model.get("ready"))


def warnings_on_home(client: HubClient) -> str:
    """The announcement on the user's home page, as text."""
    r = client.get(f"{client.hub.url}/hub/home")
    r.encoding = "utf-8"
    found = re.search(r'class="[^"]*announcement[^"]*"[^>]*>(.*?)</div>', r.text, re.S)
    return html.unescape(found.group(1)) if found else ""


def watch_until_stopped(client: HubClient, *names: str, timeout: float = 120) -> list[str]:
    """Poll until the servers `names` are gone; the warnings seen meanwhile."""
    deadline = time.monotonic() + timeout
    seen: list[str] = []
    while any(running(client, name) for name in names):
        assert time.monotonic() < deadline, f"{names} not all culled in {timeout}s"
        warning = warnings_on_home(client)
        if warning and warning not in seen:
            seen.append(warning)
        time.sleep(0.5)
    return seen


@contextlib.contextmanager
def busy_kernel(client: HubClient, name: str) -> Iterator[None]:
    """A kernel of the server `name` running code for as long as the block lasts (or until the
    server is culled under it)."""
    kernel = KernelClient(client.server_url(name), client.new_token())

    def work() -> None:
        with contextlib.suppress(Exception):  # the connection ends when the server is culled
            kernel.execute("import time; time.sleep(600)")

    worker = threading.Thread(target=work)
    worker.start()
    try:
        yield
    finally:
        with contextlib.suppress(requests.RequestException):  # gone if its server was culled
            kernel.interrupt()
            kernel.close()
        worker.join(60)


@contextlib.contextmanager
def terminal_in_use(client: HubClient, name: str) -> Iterator[None]:
    """A terminal of the server `name` with a shell printing every second, read by a client."""
    url, token = client.server_url(name), client.new_token("terminal")
    headers = {"Authorization": f"token {token}"}
    r = requests.post(url + "api/terminals", headers=headers, timeout=60)
    r.raise_for_status()
    ws = websocket.create_connection(
        url.replace("http://", "ws://") + f"terminals/websocket/{r.json()['name']}",
        header=[f"Authorization: token {token}"],
        timeout=60,
    )
    ws.send(json.dumps(["stdin", "while true; do date; sleep 1; done\r"]))

    def read() -> None:
        with contextlib.suppress(Exception):  # until the connection is closed
            while ws.recv():
                pass

    reader = threading.Thread(target=read)
    reader.start()
    try:
        yield
    finally:
        ws.close()
        reader.join(60)


@pytest.fixture
def open_tab() -> Iterator[Callable[[HubClient, str], None]]:
    """Poll a server's REST API as an idle JupyterLab tab does, until the test ends."""
    stop = threading.Event()

    def start(client: HubClient, name: str) -> None:
        url, token = client.server_url(name), client.new_token("tab")

        def poll() -> None:
            while not stop.wait(1):
                for path in ("api/kernels", "api/sessions", "api/terminals", "api/contents"):
                    with contextlib.suppress(requests.RequestException):
                        requests.get(url + path, headers={"Authorization": f"token {token}"})

        threading.Thread(target=poll, daemon=True).start()

    yield start
    stop.set()


def test_an_idle_server_is_warned_then_culled_while_kernels_and_terminals_keep_theirs(
    hub: HubProcess, open_tab: Callable[[HubClient, str], None]
) -> None:
    alice = HubClient(hub, "alice").login()
    with contextlib.ExitStack() as in_use:  # each put to work as soon as it runs
        alice.spawn({"profile": "quick"}, "busy")
        in_use.enter_context(busy_kernel(alice, "busy"))
        alice.spawn({"profile": "quick"}, "term")
        in_use.enter_context(terminal_in_use(alice, "term"))
        alice.spawn({"profile": "quick"}, "idle")
        open_tab(alice, "idle")  # an open tab polling the server is no activity
        start = time.monotonic()
        warnings = watch_until_stopped(alice, "idle")
        assert any("Your server “idle” will be stopped" in w for w in warnings), warnings
        assert any("has not been used for 20 s" in w for w in warnings), warnings
        assert not any("“busy”" in w or "“term”" in w for w in warnings), warnings
        assert time.monotonic() - start < 90
        assert "Culling server alice/idle (inactive for" in hub.log()
        # well past their 20 s timeout, the servers whose kernel or terminal works are there
        time.sleep(5)
        assert running(alice, "busy") and running(alice, "term")


def test_each_server_gets_its_profiles_policy_and_gpu_servers_the_shorter_default(
    hub: HubProcess,
) -> None:
    alice = HubClient(hub, "alice").login()
    alice.spawn({"profile": "cpu"}, "cpu")
    alice.spawn({"profile": "old"}, "old")
    with busy_kernel(alice, "old"):
        alice.spawn({"profile": "gpu"}, "gpu")
        warnings = watch_until_stopped(alice, "gpu", "old")
    said = "\n".join(warnings)
    assert re.search(r"Your server “gpu” will be stopped .* has not been used for 20 s", said)
    assert "Culling server alice/gpu (inactive for" in hub.log()
    # "old" is busy, but at its maximum age of 45 s it goes too, with its own warning
    assert re.search(r"Your server “old” will be stopped .* maximum age of 45 s", said)
    assert re.search(r"Culling server alice/old \(age: 00:00:[4-9]\d", hub.log())
    assert running(alice, "cpu")  # the CPU default (1 h) is far away


def test_a_server_with_a_running_job_is_kept_and_the_job_is_not_culled(hub: HubProcess) -> None:
    bob = HubClient(hub, "bob").login()
    bob.spawn({"profile": "quick"}, "jobs")
    jobs = Jobs(bob)
    r = jobs.submit(
        "import time; time.sleep(75)\n'done'", workers=1, framework="python", server_name="jobs"
    )
    assert r.status_code == 201, r.text
    job_id = r.json()["id"]
    bob.spawn({"profile": "quick"}, "idle")
    assert jobs.wait(job_id, states=("Running",))["state"] == "Running"

    watch_until_stopped(bob, "idle")  # the same profile and just as idle, but without a job
    assert running(bob, "jobs")
    assert jobs.call("GET", f"api/jobs/{job_id}").json()["state"] == "Running"

    assert jobs.wait(job_id)["state"] == "Succeeded"
    watch_until_stopped(bob, "jobs")  # once its job has ended, the idle server goes
