"""Local mode keeps users apart (a root hub): from bob's kernel and from bob's job, everything of
the hub's and of alice's is refused; bob's job runs out of memory at his profile's limit; and
stopping alice's server cancels her job."""

from __future__ import annotations

import json
import os
import pwd
import re
import time
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.hubclient import HubClient, HubProcess
from tests.helpers.kernel import KernelClient
from tests.integration.test_jobs_api import Jobs

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="isolation needs a root hub")

#: What a process of bob's tries; every attempt must end in an error (its name is recorded).
ATTEMPTS = """
import json, os, socket
def attempt(action):
    try:
        action()
        return "allowed"
    except OSError as e:
        return type(e).__name__
D, AW, AJ, PIDS, PORT = {params}
found = {{
    "uid": os.getuid(),
    "cookie secret": attempt(lambda: open(D + "/jupyterhub_cookie_secret", "rb").read()),
    "hub database": attempt(lambda: open(D + "/jupyterhub.sqlite", "rb").read()),
    "jobs database (write)": attempt(lambda: open(D + "/jobs.sqlite", "ab").close()),
    "data dir listing": attempt(lambda: os.listdir(D)),
    "alice's workspace": attempt(lambda: os.listdir(AW)),
    "alice's file": attempt(lambda: open(AW + "/secret.txt").read()),
    "alice's workspace (write)": attempt(lambda: open(AW + "/planted.txt", "w").close()),
    "alice's job dir": attempt(lambda: os.listdir(AJ)),
    "alice's payload": attempt(lambda: open(AJ + "/payload.pkl", "rb").read()),
    "alice's rendezvous": attempt(lambda: socket.create_connection(("127.0.0.1", PORT), 3).close()),
}}
for name, pid in PIDS.items():
    found[name + " environ"] = attempt(lambda: open(f"/proc/{{pid}}/environ", "rb").read())
    found[name + " in /proc"] = "allowed" if os.path.exists(f"/proc/{{pid}}") else "hidden"
found["tokens"] = sorted(k for k in os.environ if "TOKEN" in k or "SECRET" in k)
print("FOUND" + json.dumps(found), flush=True)
"""

#: What a job of bob's plants in its own directory: links to the hub's cookie secret in place of
#: its log, progress and result.
PLANT = """
import os
d = os.environ["HUBFLOW_JOB_DIR"]
for name in ("logs/rank-0.log", "progress.json", "result.pkl"):
    if os.path.lexists(os.path.join(d, name)):
        os.remove(os.path.join(d, name))
    os.symlink("{secret}", os.path.join(d, name))
"""

RENDEZVOUS = """
import os, time, torch.distributed as dist
dist.init_process_group("gloo")
print("PORT", os.environ["MASTER_PORT"], flush=True)
time.sleep(90)
"""


def pid_of(pattern: str) -> int:
    """The pid of the one process whose command line holds `pattern`."""
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and pattern.encode() in (proc / "cmdline").read_bytes():
                return int(proc.name)
        except OSError:
            continue
    raise AssertionError(f"no process {pattern!r}")


def found_in(text: str) -> dict[str, Any]:
    """What ATTEMPTS found, from its output."""
    match = re.search(r"^FOUND(\{.*\})$", text, re.M)
    assert match, text[-2000:]
    return dict(json.loads(match.group(1)))


def log_text(jobs: Jobs, job_id: str) -> str:
    """A job's rank-0 log as text (the logs API sends one JSON object per line)."""
    lines = jobs.call("GET", f"api/jobs/{job_id}/logs").text.splitlines()
    return "\n".join(json.loads(line)["line"] for line in lines if line.strip())


def assert_all_refused(found: dict[str, Any], account: str) -> list[str]:
    """Every attempt refused, as `account`; the names of token-like variables it was given."""
    assert found.pop("uid") == pwd.getpwnam(account).pw_uid
    tokens: list[str] = found.pop("tokens")
    refused = {k: v for k, v in found.items() if v != "allowed"}
    assert refused == found, f"allowed to bob: {set(found) - set(refused)}"
    assert found["alice's rendezvous"] == "ConnectionRefusedError"
    return tokens


def test_bob_reaches_nothing_of_the_hubs_or_alices(hub: HubProcess) -> None:
    alice_client, bob_client = HubClient(hub, "alice").login(), HubClient(hub, "bob").login()
    alice_client.spawn({"profile": "cpu-small"})
    bob_client.spawn({"profile": "cpu-small"})
    alice, bob = Jobs(alice_client), Jobs(bob_client)

    workspace = hub.data_dir / "users" / "alice" / "workspace"
    assert workspace.stat().st_uid == pwd.getpwnam("jupyter-alice").pw_uid
    assert workspace.stat().st_mode & 0o777 == 0o700
    (workspace / "secret.txt").write_text("alice's")
    os.chown(workspace / "secret.txt", workspace.stat().st_uid, workspace.stat().st_gid)

    job = alice.submit(RENDEZVOUS, framework="python", workers=2).json()
    alice.wait(job["id"], states=("Running",))
    deadline = time.monotonic() + 120
    while "PORT" not in (logs := alice.call("GET", f"api/jobs/{job['id']}/logs").text):
        assert time.monotonic() < deadline, logs
        time.sleep(0.5)
    port = int(re.search(r"PORT (\d+)", logs).group(1))  # type: ignore[union-attr]
    job_dir = hub.data_dir / "jobs" / job["id"]
    assert job_dir.stat().st_uid == workspace.stat().st_uid
    assert job_dir.stat().st_mode & 0o777 == 0o700

    assert hub.proc is not None
    pids = {
        "hub": hub.proc.pid,
        "proxy": pid_of("configurable-http-proxy"),
        "jobs service": pid_of("hubflow.jobs"),
        "alice's server": pid_of("jupyterhub-singleuser"),
    }
    params = repr((str(hub.data_dir), str(workspace), str(job_dir), pids, port))
    code = ATTEMPTS.format(params=params)

    # from bob's kernel
    kernel = KernelClient(bob_client.server_url(), bob.headers["Authorization"].split()[1])
    run = kernel.execute(code)
    assert not run.error, run.traceback
    tokens = assert_all_refused(found_in(run.stdout), "jupyter-bob")
    assert set(tokens) <= {"JUPYTERHUB_API_TOKEN", "JPY_API_TOKEN"}, tokens

    # from bob's job
    bobs = bob.submit(code, framework="python").json()
    assert bob.wait(bobs["id"])["state"] == "Succeeded"
    found = found_in(log_text(bob, bobs["id"]))
    assert assert_all_refused(found, "jupyter-bob") == []  # no token at all in a job

    # links bob plants in his own job's directory lead the jobs service nowhere
    secret = (hub.data_dir / "jupyterhub_cookie_secret").read_text().strip()
    planted = bob.submit(PLANT.format(secret=hub.data_dir / "jupyterhub_cookie_secret")).json()
    assert bob.wait(planted["id"])["state"] == "Succeeded"
    shown = bob.call("GET", f"api/jobs/{planted['id']}").text
    shown += bob.call("GET", f"api/jobs/{planted['id']}/logs").text
    shown += bob.call("GET", f"api/jobs/{planted['id']}/result").text
    assert secret not in shown

    # bob's job runs out of memory at his profile's limit (2G), his server lives on
    hog = bob.submit("x = b'x' * (3 << 30)\nprint('survived')", framework="python").json()
    ended = bob.wait(hog["id"])
    assert ended["state"] == "Failed" and ended["exit_codes"] == {"0": -9}, ended
    assert (bob_client.server() or {}).get("ready")

    # stopping alice's server cancels her job (the default) and ends its processes
    alice_client.stop_server()
    assert alice.wait(job["id"])["state"] == "Cancelled"
