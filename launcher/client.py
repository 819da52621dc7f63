"""A client of the jobs REST API, found from the server's environment."""

from __future__ import annotations

import base64
import builtins
import json
import os
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import requests

from hubflow.launcher.contract import JOBS_URL_ENV

#: What a user's server environment holds for the launcher.
ENV_URL, ENV_TOKEN, ENV_SERVER = (JOBS_URL_ENV, "JUPYTERHUB_API_TOKEN", "JUPYTERHUB_SERVER_NAME")


class JobsAPIError(RuntimeError):
    """The jobs API refused a request; `status`, `field` and the service's message."""

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.field = field


@dataclass(frozen=True)
class LogLine:
    """One line a rank printed, and the offset to resume that rank's log from."""

    rank: int
    offset: int
    line: str


#: How long a submit whose answer was lost is retried (a local hub restarts a crashed jobs service
#: within seconds; on Kubernetes its Deployment replaces the pod), and the longest pause between
#: tries.
SUBMIT_RETRY_S = 60
SUBMIT_PAUSE_MAX_S = 2.0

#: How long a call paced by the service's per-user request rate is sent again (its Retry-After).
PACED_RETRY_S = 30

#: How long a read (GET) waits for a jobs service that refuses connections (restarting), trying
#: every RESTART_POLL_S.
RESTART_WAIT_S = 30
RESTART_POLL_S = 0.5


def _paced_pause(response: requests.Response, error: dict[str, Any]) -> float | None:
    """The seconds to wait before sending a paced call again (None: not paced; an answer)."""
    if response.status_code != 429 or error.get("quota") != "max_request_rate":
        return None
    try:
        return min(max(float(response.headers.get("Retry-After", "1")), 0.1), 10.0)
    except ValueError:
        return 1.0


class JobsClient:
    """Calls the jobs API with the server's own JupyterHub token."""

    def __init__(self, url: str, token: str, server_name: str = "") -> None:
        self.url = url if url.endswith("/") else url + "/"
        self.server_name = server_name
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"token {token}"

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> JobsClient:
        """From HUBFLOW_JOBS_URL, JUPYTERHUB_API_TOKEN and JUPYTERHUB_SERVER_NAME."""
        missing = [name for name in (ENV_URL, ENV_TOKEN) if not env.get(name)]
        if missing:
            raise RuntimeError(
                f"{' and '.join(missing)} not set: the launcher runs inside a hubflow server"
            )
        return cls(env[ENV_URL], env[ENV_TOKEN], env.get(ENV_SERVER, ""))

    def _call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """One call; a call paced by the service's per-user request rate (429 naming
        max_request_rate) is sent again after its Retry-After, for up to PACED_RETRY_S; a read
        waits up to RESTART_WAIT_S for a service that is restarting."""
        timeout = kwargs.pop("timeout", 30)
        deadline = time.monotonic() + PACED_RETRY_S
        restarted_by = time.monotonic() + RESTART_WAIT_S
        while True:
            try:
                response = self.session.request(method, self.url + path, timeout=timeout, **kwargs)
            except requests.ConnectionError:
                # a read is safe to send again; a write whose answer was lost is the caller's
                if method != "GET" or time.monotonic() + RESTART_POLL_S > restarted_by:
                    raise
                time.sleep(RESTART_POLL_S)
                continue
            if response.status_code < 400:
                return response
            try:
                error = response.json()
            except ValueError:
                error = {"message": response.text or response.reason}
            pause = _paced_pause(response, error)
            if pause is None or time.monotonic() + pause > deadline:
                raise JobsAPIError(
                    response.status_code, error.get("message", ""), error.get("field")
                )
            time.sleep(pause)

    def submit(
        self,
        payload: bytes,
        *,
        workers: int,
        gpus_per_worker: int = 0,
        framework: str = "pytorch",
        name: str = "",
    ) -> dict[str, Any]:
        """Submit a job from this server; the job's model. A submit whose answer was lost (the
        service restarting, the connection cut) is sent again, with the same client key, so the
        service makes one job of it however many tries reach it."""
        body = {
            "payload": base64.b64encode(payload).decode(),
            "workers": workers,
            "gpus_per_worker": gpus_per_worker,
            "framework": framework,
            "name": name,
            "server_name": self.server_name,
            "client_key": uuid.uuid4().hex,
        }
        deadline = time.monotonic() + SUBMIT_RETRY_S
        pause = 0.5
        while True:
            try:
                return dict(self._call("POST", "api/jobs", json=body).json())
            except (requests.ConnectionError, requests.Timeout, JobsAPIError) as e:
                # A 503 that names a field is the service's answer (no Kubeflow on the
                # cluster), not a lost one: retrying it would only delay it.
                lost = not isinstance(e, JobsAPIError) or (e.status == 503 and e.field is None)
                if not lost or time.monotonic() + pause > deadline:
                    raise
            time.sleep(pause)
            pause = min(pause * 2, SUBMIT_PAUSE_MAX_S)

    def list(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "api/jobs").json()["jobs"])

    def get(self, job_id: str) -> dict[str, Any]:
        return dict(self._call("GET", f"api/jobs/{job_id}").json())

    def cancel(self, job_id: str) -> dict[str, Any]:
        return dict(self._call("POST", f"api/jobs/{job_id}/cancel").json())

    def result(self, job_id: str) -> bytes | str:
        """Rank 0's cloudpickled result (to its owner); the result as text (to anyone else)."""
        answer = self._call("GET", f"api/jobs/{job_id}/result").json()
        if answer.get("encoding") == "text":
            return str(answer["result"])
        return base64.b64decode(answer["result"])

    def create_pool(
        self, *, workers: int, gpus_per_worker: int = 0, framework: str = "pytorch", name: str = ""
    ) -> dict[str, Any]:
        """Start a warm pool for this server; its model, with the pool's `key` (given once)."""
        body = {
            "workers": workers,
            "gpus_per_worker": gpus_per_worker,
            "framework": framework,
            "name": name,
            "server_name": self.server_name,
        }
        return dict(self._call("POST", "api/pools", json=body, timeout=60).json())

    def list_pools(self) -> builtins.list[dict[str, Any]]:
        return list(self._call("GET", "api/pools").json()["pools"])

    def get_pool(self, pool_id: str) -> dict[str, Any]:
        return dict(self._call("GET", f"api/pools/{pool_id}").json())

    def take_pool(self, pool_id: str) -> dict[str, Any]:
        """Take over one of your live pools (after a kernel restart): its model with a new
        `key`; the old key stops working."""
        return dict(self._call("POST", f"api/pools/{pool_id}/key").json())

    def stop_pool(self, pool_id: str) -> dict[str, Any]:
        """Stop a warm pool and its ranks; its model."""
        return dict(self._call("DELETE", f"api/pools/{pool_id}").json())

    def logs(
        self,
        job_id: str,
        *,
        rank: int | None = None,
        offsets: Mapping[int, int] | None = None,
        follow: bool = False,
    ) -> Iterator[LogLine]:
        """Log lines; with `follow`, as they are printed until the job ends."""
        params: dict[str, str] = {"follow": "1" if follow else "0"}
        if rank is not None:
            params["rank"] = str(rank)
        if offsets:
            params["offsets"] = ",".join(f"{r}:{o}" for r, o in offsets.items())
        response = self._call(
            "GET", f"api/jobs/{job_id}/logs", params=params, stream=True, timeout=(30, None)
        )
        with response:
            for raw in response.iter_lines():
                if raw:
                    item = json.loads(raw)
                    yield LogLine(item["rank"], item["offset"], item["line"])
