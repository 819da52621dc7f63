"""A whole hub in Kubernetes mode: the spawn page and the admin view count the real cluster's
GPUs (gpu-a100-1 holds 4 A100s) from the hub's shared watch, as pods take them."""

from __future__ import annotations

import html
import re
import time
from collections.abc import Callable

from tests.helpers.hubclient import HubClient, HubProcess
from tests.kube.cluster.fixtures import Namespace
from tests.kube.test_kube_hub import wait_for_free_gpus


def page_text(page: str) -> str:
    """A page's words, tags and runs of white space taken out."""
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page)))


def wait_for_text(read: Callable[[], str], wanted: str, timeout: float = 60) -> str:
    """Read a page again until its words contain `wanted` (the watch applies events a moment
    after the API server has them)."""
    deadline = time.monotonic() + timeout
    while wanted not in (text := page_text(read())):
        if time.monotonic() > deadline:
            raise AssertionError(f"{wanted!r} not in {text[-2000:]}")
        time.sleep(0.5)
    return text


def test_spawn_page_and_admin_view_count_the_clusters_gpus(
    kube_hub: HubProcess, kube_ns: Namespace
) -> None:
    wait_for_free_gpus(kube_ns.cluster)
    admin = HubClient(kube_hub, "admin").login()
    wait_for_text(admin.spawn_page, "NVIDIA A100 SXM4 80GB: 4 of 4 free")

    alice = HubClient(kube_hub, "alice").login()
    alice.spawn({"profile": "multi-gpu", "profile-option-multi-gpu--gpu": "4"})

    text = wait_for_text(admin.spawn_page, "NVIDIA A100 SXM4 80GB: 0 of 4 free")
    assert "Cannot start now: only 0 of 4 A100 GPUs are free, it needs 1" in text

    def admin_view() -> str:
        r = admin.get(f"{kube_hub.url}/hub/hubflow/admin")
        r.raise_for_status()
        r.encoding = "utf-8"
        return r.text

    text = wait_for_text(admin_view, "NVIDIA A100 SXM4 80GB 4 0 4")
    assert "Multi-GPU 1" in text
    assert "alice (default) Multi-GPU jupyterlab 4 × A100 running" in text
