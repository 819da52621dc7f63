"""Recovery: a hub killed with SIGKILL leaves its services running (the jobs service holding its
port), and the next hub finds them, stops them and starts its own; a token revoked in the hub
stops working on the jobs API within seconds."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import requests

from tests.helpers.hubclient import HubClient, HubProcess
from tests.helpers.services import service_pids
from tests.integration.test_jobs_api import Jobs, started


def test_services_a_killed_hub_left_are_replaced_by_the_next_hub(login, hub: HubProcess) -> None:
    alice = started(login, "alice")
    old = {name: service_pids(hub, name) for name in ("hubflow-jobs", "hubflow-culler")}
    assert all(len(pids) == 1 for pids in old.values()), old
    assert hub.proc is not None
    os.kill(hub.proc.pid, signal.SIGKILL)  # the hub alone: its services live on
    hub.proc.wait()
    time.sleep(1)
    assert all(Path(f"/proc/{pids[0]}").exists() for pids in old.values())

    hub.start()
    new = {name: service_pids(hub, name) for name in old}
    for name, pids in old.items():
        assert (
            not Path(f"/proc/{pids[0]}").exists()
            or b") Z" in Path(f"/proc/{pids[0]}/stat").read_bytes()
        ), f"{name} {pids[0]} still runs"
        assert len(new[name]) == 1 and new[name] != pids, (name, new)
    assert "left running by a hub that ended without it" in hub.log()
    # the new jobs service has the port and answers
    jobs = Jobs(alice.client)
    job_id = jobs.submit("print('after the crash')", framework="python").json()["id"]
    assert jobs.wait(job_id)["state"] == "Succeeded"


def test_a_revoked_token_stops_working_on_the_jobs_api_within_seconds(login) -> None:
    alice: HubClient = login("alice")
    token = alice.new_token("revoke-me")
    url = alice.hub.jobs_url + "api/jobs"
    headers = {"Authorization": f"token {token}"}
    assert requests.get(url, headers=headers, timeout=10).status_code == 200  # now cached
    tokens = alice.api("GET", "users/alice/tokens").json()["api_tokens"]
    (token_id,) = [t["id"] for t in tokens if t["note"] == "revoke-me"]
    assert alice.api("DELETE", f"users/alice/tokens/{token_id}").status_code == 204
    revoked = time.monotonic()
    while requests.get(url, headers=headers, timeout=10).status_code == 200:
        assert time.monotonic() - revoked < 8, "the revoked token still works"
        time.sleep(0.2)
    assert requests.get(url, headers=headers, timeout=10).status_code in (401, 403)
