"""The server extension in a real user's server: `/user/NAME/hubflow/api/jobs...` reaches the
real jobs service with the server's own token, streams a followed log, and refuses callers
who are not authenticated to that server; `hubflow/api/pools` lists and stops the owner's warm
pools only, and nothing there hands out or uses a pool's key."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from typing import Any

import pytest
import requests

from hubflow.launcher.payload import cell_payload
from tests.helpers.hubclient import HubClient, HubProcess


class ServerJobs:
    """The jobs API through a user's server, called with a token of that user."""

    def __init__(self, client: HubClient, token: str, api: str = "jobs") -> None:
        self.url = client.server_url() + f"hubflow/api/{api}"
        self.headers = {"Authorization": f"token {token}"}

    def call(self, method: str, path: str = "", **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 60)
        return requests.request(method, self.url + path, headers=self.headers, **kwargs)

    def submit(self, code: str) -> dict[str, Any]:
        payload = base64.b64encode(cell_payload(code, {}).dumps()).decode()
        r = self.call("POST", json={"payload": payload, "workers": 1, "framework": "python"})
        assert r.status_code == 201, r.text
        assert r.headers["Location"].endswith(r.json()["id"])
        return dict(r.json())

    def wait_state(self, job_id: str, states: tuple[str, ...], timeout: float = 120) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = str(self.call("GET", f"/{job_id}").json()["state"])
            if state in states:
                return state
            time.sleep(0.3)
        raise TimeoutError(f"job {job_id} not in {states}")


def with_server(login: Callable[[str], HubClient], name: str) -> HubClient:
    client = login(name)
    client.spawn({"profile": "cpu-small"})
    return client


@pytest.fixture
def alice(login: Callable[[str], HubClient]) -> HubClient:
    return with_server(login, "alice")


def test_calls_reach_the_jobs_service_as_the_server_and_logs_stream_while_the_job_runs(
    alice: HubClient,
) -> None:
    jobs = ServerJobs(alice, alice.new_token())
    done = jobs.submit("print('hello from the job')\n42")
    assert jobs.wait_state(done["id"], ("Succeeded", "Failed")) == "Succeeded"
    listed = jobs.call("GET").json()["jobs"]
    assert [job["id"] for job in listed] == [done["id"]]
    assert listed[0]["user"] == "alice"
    logs = jobs.call("GET", f"/{done['id']}/logs")
    assert logs.headers["Content-Type"] == "application/x-ndjson"
    assert json.loads(logs.text.splitlines()[0])["line"] == "hello from the job"
    assert jobs.call("GET", f"/{done['id']}/result").json()["encoding"] == "cloudpickle+base64"

    # a followed log: the first line arrives while the job still runs; cancel ends the stream
    waiting = jobs.submit("import time\nprint('first', flush=True)\ntime.sleep(300)")
    stream = jobs.call("GET", f"/{waiting['id']}/logs", params={"follow": "1"}, stream=True)
    lines = stream.iter_lines()
    assert json.loads(next(lines))["line"] == "first"
    assert jobs.call("GET", f"/{waiting['id']}").json()["state"] in ("Pending", "Running")
    cancelled = jobs.call("POST", f"/{waiting['id']}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    assert list(lines) == []  # the stream ends with the job
    assert jobs.wait_state(waiting["id"], ("Cancelled",)) == "Cancelled"


def test_the_services_refusals_reach_the_caller_and_strangers_are_refused(
    alice: HubClient, login
) -> None:
    jobs = ServerJobs(alice, alice.new_token())
    missing = jobs.call("GET", "/0123456789ab")
    assert missing.status_code == 404
    assert missing.json()["message"] == "job_id: no job 0123456789ab"
    bad = jobs.call("POST", json={"payload": "not base64!", "workers": 1})
    assert bad.status_code == 400
    assert bad.json()["field"] == "payload"
    assert jobs.call("GET", "/not-a-job-id").status_code == 404  # only job paths are forwarded
    # callers not authenticated to alice's server: nobody, and bob
    anonymous = requests.get(jobs.url, timeout=60, allow_redirects=False)
    assert anonymous.status_code == 403
    bob_token = login("bob").new_token()
    as_bob = requests.get(jobs.url, headers={"Authorization": f"token {bob_token}"}, timeout=60)
    assert as_bob.status_code == 403


def test_the_owners_pools_are_listed_and_stopped_and_no_pool_key_passes(
    hub: HubProcess, alice: HubClient, login: Callable[[str], HubClient]
) -> None:
    token = alice.new_token()
    started = requests.post(
        f"{hub.jobs_url}api/pools",
        json={"workers": 1, "framework": "python", "name": "warm"},
        headers={"Authorization": f"token {token}"},
        timeout=60,
    )
    assert started.status_code == 201, started.text
    pool_id = started.json()["id"]
    pools = ServerJobs(alice, token, "pools")

    listed = pools.call("GET", params={"user": "bob"}).json()["pools"]  # the query is not hers
    assert [(p["id"], p["user"], p["name"]) for p in listed] == [(pool_id, "alice", "warm")]
    assert listed[0]["state"] in ("Starting", "Idle") and "key" not in listed[0]
    assert {"created", "idle_s", "workers", "gpus_per_worker", "reason"} <= set(listed[0])

    # what hands out or uses a pool's key is not reachable from the browser
    assert pools.call("POST", json={"workers": 1}).status_code == 405  # start: answers a key
    assert pools.call("GET", f"/{pool_id}").status_code == 405
    for path in ("key", "cells", "interrupt"):
        assert pools.call("POST", f"/{pool_id}/{path}").status_code == 404, path

    # another user's server neither lists nor stops alice's pool: bob by the service's own
    # check, the admin (whose server's token could) by the extension's
    for name in ("bob", "admin"):
        other = with_server(login, name)
        theirs = ServerJobs(other, other.new_token(), "pools")
        assert theirs.call("GET").json() == {"pools": []}, name
        refused = theirs.call("DELETE", f"/{pool_id}")
        assert refused.status_code == 404, (name, refused.text)
        assert refused.json()["message"] == f"no pool {pool_id}"
    assert pools.call("GET").json()["pools"][0]["state"] in ("Starting", "Idle")

    stopped = pools.call("DELETE", f"/{pool_id}")
    assert stopped.status_code == 200, stopped.text
    assert (stopped.json()["state"], stopped.json()["reason"]) == ("Stopped", "stopped by alice")
    assert [p["state"] for p in pools.call("GET").json()["pools"]] == ["Stopped"]
