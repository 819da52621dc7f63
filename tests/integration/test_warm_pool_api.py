"""The pools REST API against a real hub: fields, quotas, owners, and the pool key that alone
lets cells in; the CLI lists and stops pools."""

from __future__ import annotations

import base64
import json
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import cloudpickle
import requests

from hubflow.launcher.payload import cell_payload
from tests.helpers.hubclient import HubClient, HubProcess
from tests.helpers.kernel import KernelClient

WARM_PYTHON = "%%distribute --warm --workers 1 --framework python"


def _user(login: Callable[[str], HubClient], name: str) -> tuple[HubClient, dict[str, str]]:
    client = login(name)
    client.spawn({"profile": "cpu-small"})
    return client, {"Authorization": f"token {client.new_token()}"}


def _cell(url: str, pool_id: str, key: str, code: str) -> tuple[int, list[dict[str, Any]]]:
    r = requests.post(
        f"{url}api/pools/{pool_id}/cells",
        data=cell_payload(code, {}).dumps(),
        headers={"Authorization": f"pool-key {key}"},
        timeout=120,
    )
    lines = [json.loads(raw) for raw in r.iter_lines() if raw] if r.ok else [r.json()]
    return r.status_code, lines


def test_pool_api_checks_fields_quotas_owners_and_keys(
    hub: HubProcess, login: Callable[[str], HubClient]
) -> None:
    url = hub.jobs_url
    bob_client, bob = _user(login, "bob")  # the default quota: 2 concurrent jobs
    _, alice = _user(login, "alice")

    def create(body: dict[str, Any], headers: dict[str, str] = bob) -> requests.Response:
        return requests.post(f"{url}api/pools", json=body, headers=headers, timeout=60)

    for body, status, field in (
        ({"workers": 1, "payload": "eA=="}, 400, "payload"),
        ({"workers": 0}, 400, "workers"),
        ({"workers": 1, "framework": "mpi"}, 400, "framework"),
        ({"workers": 5}, 403, "workers"),  # job_workers: 4
        ({"workers": 1, "gpus_per_worker": 1}, 422, "gpus_per_worker"),  # the server has none
    ):
        r = create(body)
        assert (r.status_code, r.json()["field"]) == (status, field), r.text
    first, second = (create({"workers": 1, "framework": "python"}) for _ in range(2))
    assert first.status_code == second.status_code == 201, first.text + second.text
    one, two = first.json(), second.json()
    assert one["state"] == "Starting" and one["kind"] == "pool" and one["key"]
    # a pool is one of the user's concurrent jobs
    third = create({"workers": 1, "framework": "python"})
    assert third.status_code == 403 and third.json()["field"] == "jobs", third.text
    assert "you already run 2 jobs" in third.json()["message"]

    # cells need the pool's own key: not a hub token, not another pool's key
    r = requests.post(f"{url}api/pools/{one['id']}/cells", data=b"x", headers=bob, timeout=30)
    assert r.status_code == 403 and "pool-key" in r.json()["message"]
    assert _cell(url, one["id"], two["key"], "1")[0] == 403
    status, lines = _cell(url, one["id"], one["key"], "print('hi')\n6 * 7\n")
    assert status == 200 and lines[0] == {"rank": 0, "line": "hi"}
    outcome = lines[-1]
    assert outcome["state"] == "Succeeded" and outcome["pool"]["state"] == "Idle"
    assert cloudpickle.loads(base64.b64decode(outcome["result"]))["value"] == 42

    # the owner's token takes a pool over with a new key; the old key stops working
    renewed = requests.post(f"{url}api/pools/{two['id']}/key", headers=bob, timeout=30)
    assert renewed.status_code == 200 and renewed.json()["key"] != two["key"]
    assert _cell(url, two["id"], two["key"], "1")[0] == 403
    two = renewed.json()
    assert (
        requests.post(f"{url}api/pools/{two['id']}/key", headers=alice, timeout=30).status_code
        == 404
    )

    # the culler keeps a server whose pool runs a cell, not one whose pool is only idle
    admin = {"Authorization": f"token {login('admin').new_token()}"}
    running = threading.Thread(
        target=_cell, args=(url, two["id"], two["key"], "import time\ntime.sleep(4)\n")
    )
    running.start()
    time.sleep(1.5)
    busy = requests.get(f"{url}api/busy-servers", headers=admin, timeout=30).json()["servers"]
    running.join()
    assert {"id": two["id"], "state": "Busy", "kind": "pool"} in busy[0]["jobs"], busy
    assert busy[0]["user"] == "bob" and len(busy) == 1
    idle = requests.get(f"{url}api/busy-servers", headers=admin, timeout=30).json()["servers"]
    assert idle == []

    # another user sees nothing of bob's pools
    assert requests.get(f"{url}api/pools/{one['id']}", headers=alice, timeout=30).status_code == 404
    assert (
        requests.delete(f"{url}api/pools/{one['id']}", headers=alice, timeout=30).status_code == 404
    )
    assert requests.get(f"{url}api/pools", headers=alice, timeout=30).json() == {"pools": []}
    listed = requests.get(f"{url}api/pools", headers=bob, timeout=30).json()["pools"]
    assert [p["id"] for p in listed] == [one["id"], two["id"]] and "key" not in listed[0]

    stopped = requests.delete(f"{url}api/pools/{one['id']}", headers=bob, timeout=60).json()
    assert stopped["state"] == "Stopped" and stopped["reason"] == "stopped by bob"
    assert _cell(url, one["id"], one["key"], "1")[0] == 409
    last = create({"workers": 1, "framework": "python"})
    assert last.status_code == 201  # a slot again

    # a pool ends with its server (whose GPUs it uses): stopping the server ends its pools
    # (stopped by the service's check, or their processes ended with the server's own)
    bob_client.stop_server()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        pools = requests.get(f"{url}api/pools", headers=bob, timeout=30).json()["pools"]
        if all(p["state"] in ("Stopped", "Broken") for p in pools):
            break
        time.sleep(1)
    assert all(p["state"] in ("Stopped", "Broken") for p in pools), pools


def test_a_new_kernel_takes_the_pool_over_and_the_cli_lists_and_stops_it(
    hub: HubProcess, login: Callable[[str], HubClient]
) -> None:
    alice, _ = _user(login, "alice")
    first = KernelClient(alice.server_url(), alice.new_token())
    out = first.execute(f"{WARM_PYTHON}\nx = 41\n")
    assert out.status == "ok", out.traceback
    first.close()  # the kernel restarts; the pool and its ranks' state stay
    kernel = KernelClient(alice.server_url(), alice.new_token())
    try:
        run = (
            "import subprocess\n"
            "def cli(*args):\n"
            f"    done = subprocess.run([{sys.executable!r}, '-m', 'hubflow.launcher.cli', *args],"
            " capture_output=True, text=True)\n"
            "    print(done.returncode, done.stdout, done.stderr)\n"
        )
        assert kernel.execute(run).status == "ok"
        listed = kernel.execute("cli('list')").stdout
        assert listed.startswith("0 pool ") and "Idle · 1 worker · 0 GPUs" in listed
        pool_id = listed.split()[2]
        taken = kernel.execute(f"%pool take {pool_id}")
        assert taken.stdout.startswith(f"pool {pool_id} Idle"), taken.traceback
        out = kernel.execute(f"{WARM_PYTHON} --pull y\ny = x + 1\n")
        assert out.status == "ok", out.traceback
        assert kernel.execute("print(y)").stdout.strip() == "42"
        stopped = kernel.execute(f"cli('stop', {pool_id!r})").stdout
        assert stopped.startswith(f"0 pool {pool_id} Stopped") and "stopped by alice" in stopped
    finally:
        kernel.close()
