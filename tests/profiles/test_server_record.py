"""The server record: what a spawner writes is what the jobs service and the culler read back,
and a record written before versions (hubflow 0.1) still loads."""

from __future__ import annotations

from hubflow.profiles.server_record import RECORD_VERSION, STATE_KEY, ServerRecord

PROFILE_V1 = {  # a resolved profile as hubflow 0.1 recorded it (no kubespawner_overrides)
    "slug": "gpu-1", "display_name": "1 GPU", "ide": "jupyterlab", "image": None,
    "cpu_guarantee": None, "cpu_limit": 4.0, "mem_guarantee": None, "mem_limit": 2**34,
    "gpu_type": "NVIDIA-A100", "gpu_resource": "nvidia.com/gpu", "gpu_count": 1,
    "gpu_shared": False, "environment": {"A": "1"}, "workspace": None, "extra_volumes": [],
    "node_selector": {}, "tolerations": [], "kubespawner_override": {}, "options": {},
}  # fmt: skip


def test_a_record_round_trips_through_the_spawner_state() -> None:
    record = ServerRecord("/w", ["0"], {"A": "1"}, PROFILE_V1, claims={"data": "data-alice"})
    state = {STATE_KEY: record.to_state(), "namespace": "ml", "pvc_name": "claim-alice"}
    back = ServerRecord.from_spawner_state(state)
    assert back is not None
    assert (back.namespace, back.pvc_name, back.version) == ("ml", "claim-alice", RECORD_VERSION)
    assert back.claims == {"data": "data-alice"} and back.gpu_count == 1
    assert back.resolved is not None and back.resolved.slug == "gpu-1"


def test_a_record_of_hubflow_0_1_still_loads() -> None:
    state = {STATE_KEY: {"profile": PROFILE_V1, "gpus": [0], "workspace": "/w"}}
    record = ServerRecord.from_spawner_state(state)
    assert record is not None and record.version == 1
    assert record.gpus == ["0"] and record.process == {} and record.run_as == {}
    assert record.resolved is not None and record.resolved.kubespawner_overrides == []


def test_a_server_hubflow_did_not_start_has_no_record() -> None:
    assert ServerRecord.from_spawner_state({"pod_name": "jupyter-x"}) is None
    assert ServerRecord.from_spawner_state(None) is None
