"""What Kubernetes says about a starting pod, in plain words, and what keeps it from starting.

The scheduler and the kubelet report in their own terms ("0/3 nodes are available: 3 Insufficient
nvidia.com/gpu", "ImagePullBackOff"). Users see those reports translated, with the original kept
for whoever has to fix the cluster, and a pod that cannot start is named with its reason.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]

#: The scheduler's words for a pod whose claims a provisioner has not bound yet.
_VOLUME_NOT_READY = "a volume is not ready yet"


#: Scheduler predicates in plain words (the part after the node count in FailedScheduling).
_SCHEDULER_WORDS = [
    (re.compile(r"Insufficient (\S+/gpu)"), "not enough free GPUs ({0})"),
    (re.compile(r"Insufficient cpu"), "not enough free CPU"),
    (re.compile(r"Insufficient memory"), "not enough free memory"),
    (re.compile(r"Insufficient (\S+)"), "not enough free {0}"),
    (re.compile(r"didn't match Pod's node affinity/selector"), "not of the requested node type"),
    (re.compile(r"had untolerated taint"), "reserved for other workloads"),
    (re.compile(r"Too many pods"), "full (too many pods)"),
    (re.compile(r'persistentvolumeclaim "([^"]+)" not found'), 'the volume "{0}" does not exist'),
    (re.compile(r"unbound immediate PersistentVolumeClaims"), _VOLUME_NOT_READY),
]

#: Waiting reasons of a container that will not go away by waiting.
_IMAGE_REASONS = {"ImagePullBackOff", "ErrImagePull", "InvalidImageName", "ErrImageNeverPull"}
_CONFIG_REASONS = {"CreateContainerConfigError", "CreateContainerError"}


def _scheduling_reasons(message: str) -> list[str]:
    """The scheduler's reasons in FailedScheduling's message, each in plain words, once."""
    found: list[str] = []
    rest = message
    for pattern, words in _SCHEDULER_WORDS:
        for match in pattern.finditer(rest):
            phrase = words.format(*match.groups())
            if phrase not in found:
                found.append(phrase)
        rest = pattern.sub("", rest)  # so a general pattern does not match it again
    return found


def explain_scheduling(message: str) -> str:
    """FailedScheduling's message in plain words: which node failed each check, and why."""
    found = _scheduling_reasons(message)
    summary = "; ".join(found) if found else "no node fits its requests"
    return f"no node can run it now ({summary})"


def plain_message(event: Obj) -> str:
    """One pod event as a user would say it, with Kubernetes's own words after it."""
    reason, message = event.get("reason", ""), event.get("message", "")
    image = re.search(r'image "([^"]+)"', message)
    if reason == "Scheduled":
        node = message.rsplit(" to ", 1)[-1]
        return f"Found a node to run your server on: {node}"
    if reason == "FailedScheduling":
        return f"Waiting for room: {explain_scheduling(message)}. Kubernetes says: {message}"
    if reason == "TriggeredScaleUp":
        return f"Adding a node to the cluster for your server. Kubernetes says: {message}"
    if reason == "Pulling" and image:
        return f"Downloading the image {image.group(1)}"
    if reason == "Pulled" and image:
        return f"The image {image.group(1)} is ready"
    if reason in ("Failed", "BackOff") and image:
        return f"Cannot download the image {image.group(1)}. Kubernetes says: {message}"
    if reason == "FailedMount":
        return f"Cannot attach a volume. Kubernetes says: {message}"
    if reason == "Created":
        return "Created your server's container"
    if reason == "Started":
        return "Started your server; waiting for it to answer"
    return message


@dataclass(frozen=True)
class Blocker:
    """Why a pod cannot start now; `kind` is unschedulable, image, config, volume or crash."""

    kind: str
    message: str


def _events_of(pod: Obj, events: Iterable[Obj]) -> list[Obj]:
    uid = pod["metadata"].get("uid")
    return [e for e in events if (e.get("involvedObject") or {}).get("uid") == uid]


def blocker(pod: Obj, events: Iterable[Obj]) -> Blocker | None:
    """What keeps this pod from starting, from its status and its own events (None: nothing);
    `events` may hold other pods' too, oldest first."""
    status = pod.get("status") or {}
    own_events = _events_of(pod, events)
    for condition in status.get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("reason") == "Unschedulable":
            if any(e.get("reason") == "TriggeredScaleUp" for e in own_events):
                return None  # the cluster autoscaler is adding a node for it
            text = condition.get("message", "")
            if _scheduling_reasons(text) == [_VOLUME_NOT_READY]:
                return None  # a provisioner is making its volumes (slow in a burst of new users)
            return Blocker("unschedulable", f"{explain_scheduling(text)}. Kubernetes says: {text}")
    for container in status.get("containerStatuses") or []:
        waiting = (container.get("state") or {}).get("waiting") or {}
        reason, text = waiting.get("reason", ""), waiting.get("message", "")
        if reason in _IMAGE_REASONS:
            image = container.get("image", "")
            return Blocker("image", f"its image {image} cannot be downloaded ({reason}: {text})")
        if reason in _CONFIG_REASONS:
            return Blocker("config", f"its container cannot be set up ({reason}: {text})")
        if reason == "CrashLoopBackOff":
            restarts = container.get("restartCount", 0)
            return Blocker("crash", f"the server keeps exiting (restarted {restarts} times)")
    mount_failures = [e for e in own_events if e.get("reason") == "FailedMount"]
    if mount_failures and not status.get("containerStatuses"):
        text = mount_failures[-1].get("message", "")
        return Blocker("volume", f"a volume cannot be attached ({text})")
    return None
