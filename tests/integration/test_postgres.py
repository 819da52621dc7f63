"""The hub and its jobs service on PostgreSQL as well as SQLite, with a real hub: submit, cancel
and restart; concurrent submits from many users; a jobs-service crash at every step of a submit
and of a cancel (the records match what runs once it is back, and a retried submit runs once);
the culler with no way to the jobs database."""

from __future__ import annotations

import base64
import contextlib
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests

from hubflow.launcher.client import JobsClient
from hubflow.launcher.payload import cell_payload
from tests.helpers.hubclient import HubClient, HubProcess
from tests.helpers.postgres import KINDS, postgres_server
from tests.helpers.services import service_pids
from tests.integration.test_culling import CULLING_ENV, PROFILES, running, watch_until_stopped
from tests.integration.test_jobs_api import Jobs

DB_HUB_CONFIG = Path(__file__).with_name("db_hub_config.py")
#: A database nothing listens for.
UNREACHABLE_DB = "postgresql+psycopg://nobody:nothing@127.0.0.1:9/jobs"


def database_env(kind: str, tmp_path: Path) -> dict[str, str]:
    """The hub's and the jobs service's databases: both on PostgreSQL, or the SQLite default."""
    if kind == "sqlite":
        return {}
    server = postgres_server()
    return {
        "HUBFLOW_HUB_DB_URL": server.new_database(),
        "HUBFLOW_JOBS_DB_URL": server.new_database(),
    }


def rows(url: str, query: str) -> list[tuple[object, ...]]:
    """A query's rows, straight from PostgreSQL (psycopg, not the product's code)."""
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as connection:
        return list(connection.execute(query).fetchall())


def job_pids(job_id: str) -> list[int]:
    """Processes of a job that still run (found by the job id in their environment)."""
    mark = f"HUBFLOW_JOB_ID={job_id}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            if (
                entry.name.isdigit()
                and mark in (entry / "environ").read_bytes().split(b"\0")
                and (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
            ):
                found.append(int(entry.name))
    return found


def appending(path: Path, key: str, sleep: float = 0) -> str:
    """A cell that appends `key` to `path` (how many times it ran), then sleeps."""
    return f"import time\nopen({str(path)!r}, 'a').write({key + chr(10)!r})\ntime.sleep({sleep})\n"


def test_the_hub_and_its_jobs_on_postgresql_through_submit_cancel_and_restart(
    hub_factory: Callable[..., HubProcess], tmp_path: Path
) -> None:
    env = database_env("postgresql", tmp_path)
    hub = hub_factory(extra_env=env)
    # each database's URL (with its password) goes to its owner only
    for name, absent in (
        ("hubflow-jobs", ["HUBFLOW_HUB_DB_URL"]),
        ("hubflow-culler", ["HUBFLOW_HUB_DB_URL", "HUBFLOW_JOBS_DB_URL"]),
    ):
        (pid,) = service_pids(hub, name)
        names = {
            v.split(b"=")[0].decode()
            for v in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        }
        assert not names & set(absent), (name, names & set(absent))
    alice = _spawned(hub, "alice")
    done = alice.submit("print('on postgres')", framework="python").json()["id"]
    assert alice.wait(done)["state"] == "Succeeded"
    sleeper = alice.submit("import time\ntime.sleep(120)\n", framework="python").json()["id"]
    alice.wait(sleeper, states=("Running",))
    assert alice.call("POST", f"api/jobs/{sleeper}/cancel").json()["state"] == "Cancelled"
    assert job_pids(sleeper) == []

    hub.stop()
    hub.start()
    assert alice.client.server(alice.server)["ready"]
    assert alice.wait(done)["state"] == "Succeeded"
    assert '"on postgres"' in alice.call("GET", f"api/jobs/{done}/logs").text
    assert alice.call("GET", f"api/jobs/{sleeper}").json()["state"] == "Cancelled"
    # the records are in PostgreSQL: the hub's users, the jobs service's jobs at the newest schema
    assert ("alice",) in rows(env["HUBFLOW_HUB_DB_URL"], "SELECT name FROM users")
    jobs = rows(env["HUBFLOW_JOBS_DB_URL"], "SELECT id, state, stopping FROM jobs ORDER BY created")
    assert jobs == [(done, "Succeeded", False), (sleeper, "Cancelled", False)]
    version = rows(env["HUBFLOW_JOBS_DB_URL"], "SELECT version_num FROM hubflow_jobs_version")
    assert version == [("r2",)]
    assert not (hub.data_dir / "jobs.sqlite").exists()


@pytest.mark.parametrize("kind", KINDS)
def test_concurrent_submits_from_many_users_each_run_once(
    kind: str, hub_factory: Callable[..., HubProcess], tmp_path: Path
) -> None:
    # five submits open at once per user (the per-user limit on open submits is 2 by default)
    hub = hub_factory(extra_env={**database_env(kind, tmp_path), "HUBFLOW_JOBS_MAX_UPLOADS": "5"})
    users = {name: _spawned(hub, name) for name in ("alice", "bob", "admin")}
    answers: list[tuple[str, int, str]] = []

    def submit(name: str, n: int) -> None:
        ran = hub.data_dir / "users" / name / "workspace" / "ran.txt"
        r = users[name].submit(appending(ran, f"{name}-{n}"), framework="python", name=f"c{n}")
        answers.append((name, r.status_code, r.json().get("id", r.text)))

    threads = [threading.Thread(target=submit, args=(u, n)) for n in range(5) for u in users]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert sorted(code for _, code, _ in answers) == [201] * 15, answers
    for name, _, job_id in answers:
        assert users[name].wait(job_id, timeout=240)["state"] == "Succeeded"
    for name, jobs in users.items():
        ran = (hub.data_dir / "users" / name / "workspace" / "ran.txt").read_text().split()
        assert sorted(ran) == [f"{name}-{n}" for n in range(5)]
        assert len(jobs.call("GET", "api/jobs").json()["jobs"]) == (15 if name == "admin" else 5)


SUBMIT_STEPS = (
    "submit:after-prepare",
    "submit:after-record",
    "submit:after-launch",
    "submit:after-launch-record",
)
CANCEL_STEPS = ("cancel:after-record", "cancel:after-stop")


@pytest.mark.parametrize("kind", KINDS)
def test_a_crash_at_each_step_of_submit_and_cancel_leaves_records_matching_what_runs(
    kind: str, hub_factory: Callable[..., HubProcess], tmp_path: Path
) -> None:
    crash_file = tmp_path / "crash-at"
    hub = hub_factory(
        config_file=DB_HUB_CONFIG,
        extra_env={
            **database_env(kind, tmp_path),
            "HUBFLOW_CRASH_FILE": str(crash_file),
            "HUBFLOW_CULLER_JOBS_DB_URL": UNREACHABLE_DB,
        },
    )
    alice = _spawned(hub, "alice")
    client = JobsClient(alice.url, alice.headers["Authorization"].split()[1], alice.server)
    ran = hub.data_dir / "users" / "alice" / "workspace" / "ran.txt"

    for step in SUBMIT_STEPS:
        before = service_pids(hub, "hubflow-jobs")
        crash_file.write_text(step)
        # the launcher's client: its answer is lost with the service, it retries with its key
        job = client.submit(
            cell_payload(appending(ran, step), {}).dumps(),
            workers=1,
            framework="python",
            name=step.replace(":", "-"),
        )
        assert not crash_file.exists(), f"{step}: the service did not reach the step"
        assert service_pids(hub, "hubflow-jobs") != before
        assert alice.wait(job["id"])["state"] == "Succeeded", step
        named = [j for j in client.list() if j["name"] == step.replace(":", "-")]
        assert [j["id"] for j in named] == [job["id"]], f"{step}: {named}"
        assert ran.read_text().split().count(step) == 1, f"{step} ran {ran.read_text()}"

    for step in CANCEL_STEPS:
        job_id = alice.submit("import time\ntime.sleep(300)\n", framework="python").json()["id"]
        alice.wait(job_id, states=("Running",))
        crash_file.write_text(step)
        with contextlib.suppress(requests.RequestException):
            alice.call("POST", f"api/jobs/{job_id}/cancel")
        assert not crash_file.exists(), f"{step}: the service did not reach the step"
        # back: the record says Cancelled and, as it says, nothing of the job runs
        assert alice.wait(job_id)["state"] == "Cancelled", step
        gone = time.monotonic() + 30
        while job_pids(job_id):
            assert time.monotonic() < gone, f"{step}: the job's processes still run"
            time.sleep(0.3)

    # a submit that carries the key of an earlier one gets that job again, not a new one
    key = uuid.uuid4().hex
    payload = base64.b64encode(cell_payload(appending(ran, "keyed"), {}).dumps()).decode()
    body = {
        "payload": payload,
        "framework": "python",
        "client_key": key,
        "server_name": alice.server,
    }
    first = alice.call("POST", "api/jobs", json=body)
    again = alice.call("POST", "api/jobs", json=body)
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]
    other = alice.call("POST", "api/jobs", json=dict(body, workers=2))
    assert (other.status_code, other.json()["field"]) == (409, "client_key")
    assert alice.wait(first.json()["id"])["state"] == "Succeeded"
    assert ran.read_text().split().count("keyed") == 1


def test_the_culler_works_without_any_way_to_the_jobs_database(
    hub_factory: Callable[..., HubProcess], tmp_path: Path
) -> None:
    hub = hub_factory(
        profiles=[str(PROFILES)],
        config_file=DB_HUB_CONFIG,
        extra_env={
            **CULLING_ENV,
            **database_env("postgresql", tmp_path),
            "HUBFLOW_CRASH_FILE": str(tmp_path / "no-crash"),
            "HUBFLOW_CULLER_JOBS_DB_URL": UNREACHABLE_DB,
        },
    )
    (culler,) = service_pids(hub, "hubflow-culler")
    environ = Path(f"/proc/{culler}/environ").read_bytes()
    assert f"HUBFLOW_JOBS_DB_URL={UNREACHABLE_DB}".encode() in environ.split(b"\0")
    bob = HubClient(hub, "bob").login()
    bob.spawn({"profile": "quick"}, "jobs")
    jobs = Jobs(bob)
    r = jobs.submit("import time; time.sleep(60)", framework="python", server_name="jobs")
    job_id = r.json()["id"]
    bob.spawn({"profile": "quick"}, "idle")
    jobs.wait(job_id, states=("Running",))
    watch_until_stopped(bob, "idle")  # culled: the culler runs
    assert running(bob, "jobs")  # kept: it asked the jobs API which servers have jobs
    assert jobs.call("GET", f"api/jobs/{job_id}").json()["state"] == "Running"
    assert "Culling round failed" not in hub.log()
    # the culler loaded no database driver nor the jobs service's code
    maps = Path(f"/proc/{culler}/maps").read_text()
    assert "psycopg" not in maps and "sqlalchemy" not in maps


class ServerJobs(Jobs):
    """The jobs API as one user, from a server of theirs named as no other test names one (a
    local server's cgroup is named after its account and server, the same in every test's hub on
    this machine, and other tests stop theirs)."""

    def __init__(self, client: HubClient, server: str) -> None:
        super().__init__(client)
        self.server = server

    def submit(self, code: str, **fields: Any) -> requests.Response:
        return super().submit(code, **{"server_name": self.server, **fields})


def _spawned(hub: HubProcess, name: str) -> ServerJobs:
    client = HubClient(hub, name).login()
    server = f"db{uuid.uuid4().hex[:8]}"
    client.spawn({"profile": "cpu-small"}, server)
    return ServerJobs(client, server)
