"""Warm pools: ranks started once that run cell after cell, each keeping its namespace (a model
on a GPU, an optimizer, a dataset loaded once) and the torch process group between cells.

pool = warm_pool(workers=2)        # the pool of this server with that shape, started if needed
pool.run(train_step, lr=0.1)       # rank 0's return value
pool.run_cell("x = x + 1", ns)     # a cell, with push and pull as for %%distribute
pool.stop()

In a notebook, `%%distribute --warm --workers 2` runs the cell on this kernel's pool of that
shape. Cells go to the jobs service with the pool's own key, which only this kernel holds.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any

import cloudpickle
import requests

from hubflow.launcher.api import job_error
from hubflow.launcher.client import JobsAPIError, JobsClient
from hubflow.launcher.payload import Payload, cell_payload, function_payload
from hubflow.launcher.progress import format_duration, format_progress

#: How long an interrupted cell gets to stop on every rank before the notebook gives up waiting.
INTERRUPT_WAIT_S = 10.0

Shape = tuple[int, int, str]
#: The states of a pool that runs cells.
LIVE = ("Starting", "Idle", "Busy")


class PoolBroken(RuntimeError):
    """The pool cannot run cells any more (a rank died, it was stopped or released)."""


def _since(iso: str | None, now: datetime) -> float:
    return (now - datetime.fromisoformat(iso)).total_seconds() if iso else 0.0


def pool_status_line(model: Mapping[str, Any]) -> str:
    """'pool 3f2a9c1e0b7d Idle · 2 workers · 0 GPUs · age 5m02s · idle 1m03s · 7 cells · released
    in 8m57s'."""
    now = datetime.now(timezone.utc)
    name = f" ({model['name']})" if model.get("name") else ""
    parts = [
        f"pool {model['id']}{name} {model['state']}",
        f"{model['workers']} worker{'s' if model['workers'] != 1 else ''}",
        f"{len(model.get('gpus') or [])} GPUs",
        f"age {format_duration(_since(model['created'], now))}",
    ]
    if model["state"] == "Idle":
        parts.append(f"idle {format_duration(model.get('idle_s') or 0.0)}")
    parts.append(f"{model.get('cells', 0)} cells")
    if model.get("releases_at"):
        parts.append(f"released in {format_duration(-_since(model['releases_at'], now))}")
    if model.get("reason"):
        parts.append(str(model["reason"]))
    return " · ".join(parts)


class WarmPool:
    """A handle on a warm pool this kernel started (it holds the pool's key)."""

    def __init__(self, client: JobsClient, model: dict[str, Any], key: str) -> None:
        self.client = client
        self.model = model
        self._key = key
        self._warning: threading.Timer | None = None

    def __repr__(self) -> str:
        return f"<WarmPool {self.id} {self.model['state']}>"

    @property
    def id(self) -> str:
        return str(self.model["id"])

    @property
    def shape(self) -> Shape:
        return (self.model["workers"], self.model["gpus_per_worker"], self.model["framework"])

    def refresh(self) -> dict[str, Any]:
        self.model = self.client.get_pool(self.id)
        return self.model

    @property
    def usable(self) -> bool:
        return self.model["state"] in LIVE

    def _post(self, path: str, **kwargs: Any) -> requests.Response:
        response = self.client.session.post(
            f"{self.client.url}api/pools/{self.id}/{path}",
            headers={"Authorization": f"pool-key {self._key}"},
            **kwargs,
        )
        if response.status_code >= 400:
            try:
                error = response.json()
            except ValueError:
                error = {"message": response.text or response.reason}
            if response.status_code == 409:
                raise PoolBroken(error.get("message", ""))
            raise JobsAPIError(response.status_code, error.get("message", ""), error.get("field"))
        return response

    def interrupt(self) -> None:
        """Interrupt the cell under way on every rank; the pool and its state stay."""
        self._post("interrupt", timeout=30)

    def stop(self) -> dict[str, Any]:
        """Stop the pool: its ranks end and its GPUs are released."""
        self._disarm_warning()
        self.model = self.client.stop_pool(self.id)
        return self.model

    def run_payload(
        self,
        payload: Payload,
        print_line: Callable[[str], None] = print,
        show_status: Callable[[str], None] = print,
    ) -> dict[str, Any]:
        """Run a payload on every rank; rank 0's {"value", "variables"}. A rank's exception is
        raised here as for a job; KeyboardInterrupt interrupts the cell on the ranks too."""
        self._disarm_warning()
        if self.model["state"] == "Starting":
            show_status(f"pool {self.id} Starting · {self.model['workers']} ranks (once)")
        response = self._post("cells", data=payload.dumps(), stream=True, timeout=(30, None))
        outcome: dict[str, Any] = {}
        try:
            with response:
                for raw in response.iter_lines():
                    item = json.loads(raw) if raw else {}
                    if "line" in item:
                        print_line(f"[rank {item['rank']}] {item['line']}")
                    elif "progress" in item:
                        show_status(f"pool {self.id} cell · {format_progress(item['progress'])}")
                    elif "state" in item:
                        outcome = item
        except KeyboardInterrupt:
            self._interrupted(print_line)
            self._arm_warning(print_line)
            raise
        if outcome.get("pool"):
            self.model = outcome["pool"]
            self._arm_warning(print_line)
        if outcome.get("state") == "Succeeded":
            result: dict[str, Any] = cloudpickle.loads(base64.b64decode(outcome["result"]))
            return result
        if not outcome:
            raise PoolBroken(f"pool {self.id}: the cell's answer was cut off")
        if outcome.get("interrupted"):
            raise KeyboardInterrupt(f"cell {outcome['cell']} of pool {self.id} interrupted")
        raise job_error(outcome)

    def _interrupted(self, print_line: Callable[[str], None]) -> None:
        """Interrupt the ranks, then wait (a while) until they are between cells again."""
        self.interrupt()
        deadline = time.monotonic() + INTERRUPT_WAIT_S
        while self.refresh()["state"] == "Busy" and time.monotonic() < deadline:
            time.sleep(0.05)
        if self.model["state"] == "Busy":
            print_line(f"pool {self.id}: the ranks have not stopped the cell yet (the next waits)")
        else:
            print_line(f"pool {self.id}: cell interrupted on every rank; the pool keeps its state")

    def run_cell(
        self,
        code: str,
        user_ns: Mapping[str, Any],
        *,
        push: list[str] | None = None,
        pull: list[str] | None = None,
        auto_push: bool = True,
        print_line: Callable[[str], None] = print,
        show_status: Callable[[str], None] = print,
    ) -> dict[str, Any]:
        """Run a cell on every rank, as %%distribute does; rank 0's {"value", "variables"}."""
        payload = cell_payload(code, user_ns, push=push or [], pull=pull or [], auto_push=auto_push)
        return self.run_payload(payload, print_line, show_status)

    def run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call `fn(*args, **kwargs)` on every rank; rank 0's return value."""
        return self.run_payload(function_payload(fn, args, kwargs))["value"]

    # -- the warning before an idle pool is released ---------------------------------------------
    def _disarm_warning(self) -> None:
        if self._warning is not None:
            self._warning.cancel()
            self._warning = None

    def _arm_warning(self, print_line: Callable[[str], None]) -> None:
        """Print a warning (in the notebook: in the cell running then) before the pool goes."""
        self._disarm_warning()
        if not self.model.get("warn_at"):
            return
        delay = -_since(self.model["warn_at"], datetime.now(timezone.utc))
        self._warning = threading.Timer(max(0.0, delay), self._warn, (print_line,))
        self._warning.daemon = True
        self._warning.start()

    def _warn(self, print_line: Callable[[str], None]) -> None:
        try:
            model = self.refresh()
        except (requests.RequestException, JobsAPIError):
            return
        if model["state"] == "Idle" and model.get("releases_at"):
            left = -_since(model["releases_at"], datetime.now(timezone.utc))
            print_line(
                f"hubflow: warm pool {self.id} has been idle {format_duration(model['idle_s'])}; "
                f"it is released in {format_duration(left)} (its ranks and their state go). "
                "Run a cell on it to keep it."
            )


#: This kernel's pools by shape (workers, GPUs per worker, framework).
_pools: dict[Shape, WarmPool] = {}


def warm_pool(
    workers: int,
    gpus_per_worker: int = 0,
    framework: str = "pytorch",
    *,
    name: str = "",
    restart: bool = False,
    client: JobsClient | None = None,
) -> WarmPool:
    """This kernel's pool of that shape, started if there is none. A broken or released pool
    raises PoolBroken saying why, unless `restart` (then the old one is stopped and a new one
    started)."""
    shape = (workers, gpus_per_worker, framework)
    pool = _pools.pop(shape, None)
    if pool is not None:
        try:
            pool.refresh()
        except JobsAPIError as e:
            if e.status != 404:
                raise
            # the service keeps its pools while it runs: it restarted, and the ranks left with it
            pool.model = {
                **pool.model,
                "state": "Stopped",
                "reason": "the jobs service restarted, which ends every warm pool",
            }
        if pool.usable and not restart:
            _pools[shape] = pool
            return pool
        if pool.usable:
            pool.stop()
        elif not restart:
            _pools[shape] = pool
            raise PoolBroken(
                f"warm pool {pool.id} is {pool.model['state']}: {pool.model.get('reason', '')}. "
                "Run the cell with --warm --restart to start a new pool."
            )
    client = client or JobsClient.from_env()
    model = client.create_pool(
        workers=workers, gpus_per_worker=gpus_per_worker, framework=framework, name=name
    )
    key = model.pop("key")
    pool = WarmPool(client, model, key)
    _pools[shape] = pool
    return pool


def take_over(pool_id: str, client: JobsClient | None = None) -> WarmPool:
    """Take over one of your live pools (one a restarted kernel started): from now on this
    kernel's pool of its shape, its ranks and their state as they are. It gets a new key; the
    old one stops working."""
    client = client or JobsClient.from_env()
    model = client.take_pool(pool_id)
    key = model.pop("key")
    pool = WarmPool(client, model, key)
    _pools[pool.shape] = pool
    return pool
