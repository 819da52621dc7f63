"""The local machine's GPUs: what there is, and who holds which (handed out by CUDA_VISIBLE_DEVICES)."""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Gpu:
    """One GPU: the id CUDA_VISIBLE_DEVICES takes, and its product name (e.g. NVIDIA-A100-SXM4-80GB)."""

    id: str
    product: str


class GpuUnavailable(RuntimeError):
    """Not enough free GPUs of the asked type; the message says how many are free."""


def parse_gpu_list(text: str) -> list[Gpu]:
    """Parse a configured inventory: `0:NVIDIA-A100,1:NVIDIA-A100` (id:product, comma-separated).

    `none` or an empty string means no GPUs.
    """
    gpus = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        if item == "none":
            continue
        gpu_id, sep, product = item.partition(":")
        if not sep or not gpu_id.strip() or not product.strip():
            raise ValueError(f"HUBFLOW_GPUS: {item!r} must look like '0:NVIDIA-A100'")
        gpus.append(Gpu(gpu_id.strip(), product.strip()))
    return gpus


def detect_gpus() -> list[Gpu]:
    """The NVIDIA GPUs nvidia-smi reports, or none when nvidia-smi is absent or fails."""
    smi = shutil.which("nvidia-smi")
    if not smi:
        return []
    try:
        out = subprocess.run(
            [smi, "--query-gpu=index,name", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    gpus = []
    for line in out.splitlines():
        index, _, name = line.partition(",")
        if index.strip():
            gpus.append(Gpu(index.strip(), re.sub(r"\s+", "-", name.strip())))
    return gpus


def product_matches(product: str, wanted: str | None) -> bool:
    """Whether a GPU's product name fits a profile's GPU type (`a100` fits `NVIDIA-A100-SXM4-80GB`)."""
    if not wanted:
        return True
    squash = lambda s: re.sub(r"[^a-z0-9]", "", s.lower())  # noqa: E731
    return squash(wanted) in squash(product)


class GpuAllocator:
    """Hands out GPU ids to servers so that no two hold the same GPU, unless both allow sharing.

    GPUs that jobs of a stopped server still use are held (`hold`) until those jobs end.
    """

    def __init__(self, gpus: list[Gpu]) -> None:
        self.gpus = gpus
        self._holders: dict[str, tuple[list[str], bool]] = {}
        self._holds: dict[str, tuple[list[str], Callable[[], bool]]] = {}
        self._lock = threading.Lock()

    def _job_held_ids(self) -> set[str]:
        """GPUs held by still-running jobs of stopped servers (ended holds are dropped)."""
        for key, (_, running) in list(self._holds.items()):
            if not running():
                del self._holds[key]
        return {i for ids, _ in self._holds.values() for i in ids}

    def _exclusive_ids(self) -> set[str]:
        held = {i for ids, shared in self._holders.values() if not shared for i in ids}
        return held | self._job_held_ids()

    def _held_ids(self) -> set[str]:
        return {i for ids, _ in self._holders.values() for i in ids} | self._job_held_ids()

    def free(self, product: str | None = None) -> list[Gpu]:
        """GPUs of a type no server or job holds now."""
        with self._lock:
            held = self._held_ids()
        return [g for g in self.gpus if g.id not in held and product_matches(g.product, product)]

    def availability(self) -> dict[str, tuple[int, int]]:
        """product -> (free, total), for the spawn page."""
        with self._lock:
            held = self._held_ids()
        out: dict[str, tuple[int, int]] = {}
        for gpu in self.gpus:
            free, total = out.get(gpu.product, (0, 0))
            out[gpu.product] = (free + (gpu.id not in held), total + 1)
        return out

    def _available_ids(self, count: int, product: str | None, shared: bool) -> list[str]:
        blocked = self._exclusive_ids() if shared else self._held_ids()
        fitting = [g for g in self.gpus if product_matches(g.product, product)]
        candidates = [g.id for g in fitting if g.id not in blocked]
        if len(candidates) < count:
            raise GpuUnavailable(
                f"not enough free GPUs: asked for {count} × {product or 'any type'}, "
                f"{len(candidates)} of {len(fitting)} free on this machine"
            )
        return candidates[:count]

    def check_available(self, count: int, product: str | None, shared: bool) -> None:
        """Raise GpuUnavailable unless `count` GPUs of a type could be handed out now."""
        if count > 0:
            with self._lock:
                self._available_ids(count, product, shared)

    def allocate(self, owner: str, count: int, product: str | None, shared: bool) -> list[str]:
        """Give `owner` `count` GPUs of a type; shared GPUs may go to other sharing servers too."""
        with self._lock:
            self._holders.pop(owner, None)
            if count <= 0:
                return []
            ids = self._available_ids(count, product, shared)
            self._holders[owner] = (ids, shared)
            return ids

    def claim(self, owner: str, ids: list[str], shared: bool) -> None:
        """Record GPUs a server already holds (after a hub restart)."""
        with self._lock:
            self._holders[owner] = (list(ids), shared)

    def held_by(self, owner: str) -> list[str]:
        """The GPUs `owner` holds now."""
        with self._lock:
            return list(self._holders.get(owner, ([], False))[0])

    def hold(self, key: str, ids: list[str], running: Callable[[], bool]) -> None:
        """Keep `ids` from every server while `running()` says the jobs using them run."""
        with self._lock:
            self._holds[key] = (list(ids), running)

    def release(self, owner: str) -> None:
        """Give back what `owner` holds."""
        with self._lock:
            self._holders.pop(owner, None)
