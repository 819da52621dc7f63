"""Pod events in plain words, and what blocks a starting pod."""

from __future__ import annotations

from typing import Any

from hubflow.spawner.kube_events import blocker, explain_scheduling, plain_message

UID = "pod-uid"


def pod(status: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": "jupyter-alice", "uid": UID}, "status": status}


def event(reason: str, message: str, uid: str = UID) -> dict[str, Any]:
    return {"reason": reason, "message": message, "involvedObject": {"uid": uid}}


def unschedulable(message: str) -> dict[str, Any]:
    condition = {
        "type": "PodScheduled",
        "status": "False",
        "reason": "Unschedulable",
        "message": message,
    }
    return pod({"phase": "Pending", "conditions": [condition]})


def test_scheduler_reasons_in_plain_words() -> None:
    text = (
        "0/3 nodes are available: 1 Insufficient nvidia.com/gpu, 2 node(s) didn't match Pod's "
        "node affinity/selector. preemption: 0/3 nodes are available: 3 Preemption is not helpful."
    )
    assert explain_scheduling(text) == (
        "no node can run it now (not enough free GPUs (nvidia.com/gpu); "
        "not of the requested node type)"
    )
    assert 'the volume "team" does not exist' in explain_scheduling(
        '0/3 nodes are available: persistentvolumeclaim "team" not found.'
    )
    assert explain_scheduling("0/2 nodes are available: 2 Insufficient amd.com/gpu.") == (
        "no node can run it now (not enough free GPUs (amd.com/gpu))"
    )


def test_plain_messages_keep_kubernetes_words_where_something_is_wrong() -> None:
    assert (
        plain_message(event("Scheduled", "Successfully assigned default/jupyter-alice to gpu-1"))
        == "Found a node to run your server on: gpu-1"
    )
    assert plain_message(event("Pulling", 'Pulling image "lab:1"')) == "Downloading the image lab:1"
    waiting = plain_message(
        event("FailedScheduling", "0/1 nodes are available: 1 Insufficient cpu.")
    )
    assert waiting.startswith("Waiting for room: no node can run it now (not enough free CPU)")
    assert waiting.endswith("Kubernetes says: 0/1 nodes are available: 1 Insufficient cpu.")
    assert plain_message(event("Unknown", "as it was")) == "as it was"


def test_an_unschedulable_pod_is_blocked_unless_a_node_is_being_added() -> None:
    stuck = unschedulable("0/3 nodes are available: 3 Insufficient nvidia.com/gpu.")
    found = blocker(stuck, [])
    assert found is not None and found.kind == "unschedulable"
    assert "not enough free GPUs" in found.message
    scaling = [event("TriggeredScaleUp", "pod triggered scale-up: [{gpu-pool 0->1 (max: 4)}]")]
    assert blocker(stuck, scaling) is None
    # Another pod's scale-up says nothing about this one.
    assert blocker(stuck, [event("TriggeredScaleUp", "...", uid="other")]) is not None


def test_a_pod_waiting_only_for_its_volume_to_be_provisioned_is_not_blocked() -> None:
    provisioning = (
        "0/2 nodes are available: pod has unbound immediate PersistentVolumeClaims. "
        "preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling."
    )
    assert blocker(unschedulable(provisioning), []) is None
    # A missing claim, or no room besides, is still blocked.
    missing = unschedulable('0/2 nodes are available: persistentvolumeclaim "team" not found.')
    assert blocker(missing, []) is not None
    both = unschedulable(
        "0/2 nodes are available: 1 Insufficient nvidia.com/gpu, 1 pod has unbound immediate "
        "PersistentVolumeClaims."
    )
    found = blocker(both, [])
    assert found is not None and "not enough free GPUs" in found.message


def test_image_config_crash_and_volume_blockers() -> None:
    def waiting(reason: str, message: str = "", restarts: int = 0) -> dict[str, Any]:
        state = {"waiting": {"reason": reason, "message": message}}
        container = {"name": "notebook", "image": "lab:nope", "state": state}
        return pod(
            {"phase": "Pending", "containerStatuses": [dict(container, restartCount=restarts)]}
        )

    image = blocker(waiting("ImagePullBackOff", 'Back-off pulling image "lab:nope"'), [])
    assert image is not None and image.kind == "image"
    assert image.message.startswith("its image lab:nope cannot be downloaded (ImagePullBackOff")
    config = blocker(waiting("CreateContainerConfigError", 'secret "s" not found'), [])
    assert (
        config is not None and config.kind == "config" and 'secret "s" not found' in config.message
    )
    crash = blocker(waiting("CrashLoopBackOff", restarts=3), [])
    assert crash is not None and crash.message == "the server keeps exiting (restarted 3 times)"
    assert blocker(waiting("ContainerCreating"), []) is None

    mounting = pod({"phase": "Pending"})
    failed = [event("FailedMount", 'MountVolume.SetUp failed for volume "data"')]
    volume = blocker(mounting, failed)
    assert volume is not None and volume.kind == "volume" and "data" in volume.message
    assert blocker(pod({"phase": "Running"}), []) is None
