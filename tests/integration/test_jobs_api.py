"""The jobs REST API with a real hub: ownership, validation, quotas and queueing, restart of
the service, the Python API and the CLI."""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from hubflow.launcher.payload import cell_payload
from tests.helpers.hubclient import HubClient, HubProcess
from tests.helpers.services import service_pids


class Jobs:
    """The jobs API as one user, with a token of their own."""

    def __init__(self, client: HubClient) -> None:
        self.client = client
        self.url = client.hub.jobs_url
        self.headers = {"Authorization": f"token {client.new_token()}"}

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return requests.request(method, self.url + path, headers=self.headers, timeout=30, **kwargs)

    def submit(self, code: str, **fields: Any) -> requests.Response:
        payload = base64.b64encode(cell_payload(code, {}).dumps()).decode()
        return self.call("POST", "api/jobs", json={"payload": payload, **fields})

    def wait(
        self,
        job_id: str,
        states: tuple[str, ...] = ("Succeeded", "Failed", "Cancelled"),
        timeout: float = 120,
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                model = self.call("GET", f"api/jobs/{job_id}").json()
                if model["state"] in states:
                    return model
            except (requests.RequestException, ValueError):
                pass  # the service may be restarting
            time.sleep(0.3)
        raise TimeoutError(f"job {job_id} not in {states}")


def started(login, name: str) -> Jobs:
    client = login(name)
    client.spawn({"profile": "cpu-small"})
    return Jobs(client)


def test_other_users_get_404_on_a_job_its_logs_result_and_cancel(login) -> None:
    alice, bob = started(login, "alice"), started(login, "bob")
    r = alice.submit("print('secret')\n'value'", workers=1, framework="python")
    assert r.status_code == 201, r.text
    job_id = r.json()["id"]
    assert alice.wait(job_id)["state"] == "Succeeded"
    for method, path in [
        ("GET", f"api/jobs/{job_id}"),
        ("GET", f"api/jobs/{job_id}/logs"),
        ("GET", f"api/jobs/{job_id}/result"),
        ("POST", f"api/jobs/{job_id}/cancel"),
        ("DELETE", f"api/jobs/{job_id}"),
    ]:
        r = bob.call(method, path)
        assert r.status_code == 404, (method, path, r.text)
        assert r.json()["message"] == f"job_id: no job {job_id}"
    assert bob.call("GET", "api/jobs").json()["jobs"] == []
    # the owner and an admin see it
    logs = alice.call("GET", f"api/jobs/{job_id}/logs").text
    assert '{"rank": 0, "offset": 7, "line": "secret"}' in logs
    admin = Jobs(login("admin"))
    assert [j["id"] for j in admin.call("GET", "api/jobs").json()["jobs"]] == [job_id]
    assert admin.call("GET", f"api/jobs/{job_id}/result").status_code == 200
    # no token at all
    assert requests.get(alice.url + "api/jobs", timeout=10).status_code == 401


def test_bad_bodies_and_over_quota_are_refused_with_nothing_created(login, hub: HubProcess) -> None:
    bob = started(login, "bob")
    r = bob.submit("x = 1", workers=0)
    assert (r.status_code, r.json()["field"]) == (400, "workers")
    assert r.json()["message"] == "workers: must be an integer ≥ 1"
    r = bob.submit("x = 1", workers=2, priority="high")
    assert (r.status_code, r.json()["field"]) == (400, "priority")
    r = bob.submit("x = 1", workers=5)
    assert r.status_code == 403, r.text
    refusal = r.json()
    assert (refusal["field"], refusal["quota"], refusal["limit"], refusal["group"]) == (
        "workers",
        "job_workers",
        4,
        "default",
    )
    assert "the default limit is 4" in refusal["message"]
    r = bob.submit("x = 1", workers=2, gpus_per_worker=1)
    assert (r.status_code, r.json()["field"]) == (422, "gpus_per_worker")
    assert "the server holds 0" in r.json()["message"]
    assert bob.call("GET", "api/jobs").json()["jobs"] == []
    assert not any((hub.data_dir / "jobs").glob("*"))


def test_at_the_concurrent_jobs_limit_a_job_is_queued_then_started(login) -> None:
    bob = started(login, "bob")
    sleeper = "import time\ntime.sleep(60)\n"
    first, second = (bob.submit(sleeper, framework="python").json()["id"] for _ in range(2))
    third = bob.submit("print('third ran')", framework="python").json()
    assert third["state"] == "Queued"
    assert third["reason"] == "queued: 2 of 2 concurrent jobs running, limit of group 'default'"
    bob.call("POST", f"api/jobs/{first}/cancel")
    assert bob.wait(third["id"])["state"] == "Succeeded"
    bob.call("DELETE", f"api/jobs/{second}")
    assert bob.wait(second)["state"] == "Cancelled"


def test_a_job_waits_for_gpus_another_job_of_the_server_holds(hub_factory) -> None:
    hub = hub_factory(extra_env={"HUBFLOW_GPUS": "0:NVIDIA-A100-SXM4-80GB"})
    client = HubClient(hub, "alice").login()
    client.spawn({"profile": "gpu-a100", "profile-option-gpu-a100--gpu": "1"})
    alice = Jobs(client)
    gpu_job = {"framework": "python", "workers": 1, "gpus_per_worker": 1}
    first = alice.submit("import time\ntime.sleep(60)\n", **gpu_job).json()
    assert first["state"] in ("Pending", "Running"), first
    second = alice.submit("import os\nprint(os.environ['CUDA_VISIBLE_DEVICES'])", **gpu_job).json()
    assert second["state"] == "Queued"
    assert second["reason"] == f"waiting for GPUs: 0 in use by job {first['id']}"
    alice.call("POST", f"api/jobs/{first['id']}/cancel")
    assert alice.wait(second["id"])["state"] == "Succeeded"
    logs = alice.call("GET", f"api/jobs/{second['id']}/logs").text
    assert '"line": "0"' in logs


def test_a_running_job_and_its_logs_survive_a_restart_of_the_jobs_service(
    login, hub: HubProcess
) -> None:
    alice = started(login, "alice")
    done = alice.submit("print('before')\n", framework="python").json()["id"]
    code = "import time\nprint('start', flush=True)\ntime.sleep(8)\nprint('end')\n"
    running = alice.submit(code, workers=2).json()["id"]
    alice.wait(running, states=("Running",))
    alice.wait(done)
    (old_pid,) = service_pids(hub, "hubflow-jobs")
    killed = time.monotonic()
    os.kill(old_pid, signal.SIGKILL)
    # the hub restarts a managed service that dies within about a second (hub/service_restarts.py),
    # where JupyterHub's own poll of its process would take up to 33 s
    deadline = killed + 20
    while True:
        try:
            if alice.call("GET", f"api/jobs/{running}").status_code == 200:
                break
        except requests.RequestException:
            pass
        assert time.monotonic() < deadline, hub.log()[-2000:]
        time.sleep(0.5)
    print(f"the jobs service answered again {time.monotonic() - killed:.1f} s after its kill")
    assert service_pids(hub, "hubflow-jobs") not in ([], [old_pid])
    assert alice.wait(running)["state"] == "Succeeded"
    logs = alice.call("GET", f"api/jobs/{running}/logs", params={"rank": 1}).text.splitlines()
    assert [line.split('"line": ')[1] for line in logs] == ['"start"}', '"end"}']
    assert alice.call("GET", f"api/jobs/{done}").json()["state"] == "Succeeded"
    assert '"before"' in alice.call("GET", f"api/jobs/{done}/logs").text


def test_servers_and_a_running_job_survive_a_restart_of_the_hub(login, hub: HubProcess) -> None:
    alice = started(login, "alice")
    code = "import time\nprint('start', flush=True)\ntime.sleep(6)\nprint('end')\n"
    running = alice.submit(code, framework="python").json()["id"]
    alice.wait(running, states=("Running",))
    hub.stop()
    hub.start()
    assert alice.client.server()["ready"], "the hub lost alice's running server"
    assert alice.wait(running)["state"] == "Succeeded"
    assert '"end"' in alice.call("GET", f"api/jobs/{running}/logs").text
    # the restarted hub still serves the server through its proxy
    status = alice.client.get(alice.client.server_url() + "api/status", headers=alice.headers)
    assert status.status_code == 200, status.text


def server_env(jobs: Jobs) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        HUBFLOW_JOBS_URL=jobs.url,
        JUPYTERHUB_API_TOKEN=jobs.headers["Authorization"].split()[1],
        JUPYTERHUB_SERVER_NAME="",
    )
    return env


def test_python_api_submits_a_function_and_returns_rank0_result(login) -> None:
    alice = started(login, "alice")
    script = (
        "from hubflow.launcher import submit\n"
        "def train(base):\n"
        "    import os, torch, torch.distributed as dist\n"
        "    dist.init_process_group('gloo')\n"
        "    t = torch.tensor([base + int(os.environ['RANK'])])\n"
        "    dist.all_reduce(t)\n"
        "    print('reduced', t.item())\n"
        "    return t.item()\n"
        "job = submit(train, 10, workers=2)\n"
        "print('result', job.result(timeout=120), job.status)\n"
        "print(sorted(job.logs()))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        env=server_env(alice),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert out.returncode == 0, out.stderr
    assert "result 21 Succeeded" in out.stdout
    assert "['[rank 0] reduced 21', '[rank 1] reduced 21']" in out.stdout


def test_cli_submits_a_script_follows_it_and_refuses_bad_flags(login, hub: HubProcess) -> None:
    alice = started(login, "alice")
    workspace = hub.data_dir / "users" / "alice" / "workspace"
    (workspace / "train.py").write_text(
        "import os, sys\nprint('args', sys.argv[1:], 'rank', os.environ['RANK'])\n"
    )
    cli = str(Path(sys.executable).parent / "hubflow-job")
    env = server_env(alice)
    out = subprocess.run(
        [cli, "submit", "--workers", "2", "--follow", "train.py", "--lr", "0.1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert out.returncode == 0, out.stderr
    job_id = out.stdout.splitlines()[0]
    assert "[rank 1] args ['--lr', '0.1'] rank 1" in out.stdout
    listed = subprocess.run([cli, "list"], env=env, capture_output=True, text=True, timeout=60)
    assert f"job {job_id} Succeeded" in listed.stdout
    status = subprocess.run(
        [cli, "status", job_id], env=env, capture_output=True, text=True, timeout=60
    )
    assert "Succeeded" in status.stdout
    one_rank = subprocess.run(
        [cli, "logs", job_id, "--follow", "--rank", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert one_rank.returncode == 0, one_rank.stderr
    assert "[rank 1] args" in one_rank.stdout and "[rank 0]" not in one_rank.stdout
    bad = subprocess.run(
        [cli, "submit", "train.py", "--workers", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "--workers/-n: must be an integer ≥ 1" in bad.stderr
    assert len(alice.call("GET", "api/jobs").json()["jobs"]) == 1


@pytest.mark.parametrize("framework", ["python"])
def test_failed_job_reports_failing_rank_over_rest(login, framework: str) -> None:
    alice = started(login, "alice")
    job = alice.submit(
        "import os\nif os.environ['RANK'] == '1':\n    1 / 0\n", workers=2, framework=framework
    ).json()
    model = alice.wait(job["id"])
    assert (model["state"], model["failing_rank"]) == ("Failed", 1)
    assert model["error"]["type"] == "builtins.ZeroDivisionError"
    assert "1 / 0" in model["error"]["traceback"]
    assert model["exit_codes"]["1"] == 1
