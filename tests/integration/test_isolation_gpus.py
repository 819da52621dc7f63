"""GPUs follow the work: with HUBFLOW_JOBS_ON_STOP=keep, a job outlives its server and keeps its
GPU; the next server is not handed that GPU until the job ends."""

from __future__ import annotations

from tests.helpers.hubclient import HubClient, page_error
from tests.integration.test_jobs_api import Jobs

GPU_FORM = {"profile": "gpu-a100", "profile-option-gpu-a100--gpu": "1"}


def test_a_kept_jobs_gpu_stays_held_after_its_server_stops(hub_factory) -> None:
    hub = hub_factory(
        extra_env={"HUBFLOW_GPUS": "0:NVIDIA-A100-SXM4-80GB", "HUBFLOW_JOBS_ON_STOP": "keep"}
    )
    client = HubClient(hub, "alice").login()
    client.spawn(GPU_FORM)
    alice = Jobs(client)
    job = alice.submit(
        "import time\ntime.sleep(120)\n", framework="python", gpus_per_worker=1
    ).json()
    alice.wait(job["id"], states=("Running",))

    client.stop_server()
    assert alice.call("GET", f"api/jobs/{job['id']}").json()["state"] == "Running"
    refused = client.post_spawn(GPU_FORM)
    assert refused.status_code != 302
    assert "0 of 1 free" in page_error(refused.text), page_error(refused.text)

    alice.call("POST", f"api/jobs/{job['id']}/cancel")
    assert alice.wait(job["id"])["state"] == "Cancelled"
    client.spawn(GPU_FORM)  # the GPU is free again
