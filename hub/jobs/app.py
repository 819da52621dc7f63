"""The jobs service's tornado application and its periodic scheduling."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from jupyterhub.services.auth import HubAuth
from tornado import ioloop, web

from hubflow.hub.jobs.backend import JobBackend
from hubflow.hub.jobs.handlers import (
    CancelHandler,
    JobHandler,
    JobListHandler,
    LogsHandler,
    ResultHandler,
)
from hubflow.hub.jobs.kubeflow.backend import KubeflowBackend
from hubflow.hub.jobs.kubeflow.cluster import api_client
from hubflow.hub.jobs.local import LocalBackend
from hubflow.hub.jobs.scheduler import Scheduler
from hubflow.hub.jobs.store import JobStore
from hubflow.hub.profile_source import profile_source

log = logging.getLogger(__name__)

#: How often job states are brought up to date and queued jobs considered.
TICK_INTERVAL_MS = 200


@dataclass(frozen=True)
class ServiceConfig:
    """Where the service keeps its data, which profiles set the quotas, where it listens."""

    data_dir: Path
    profile_paths: tuple[str, ...]
    port: int
    ip: str = "127.0.0.1"
    prefix: str = "/services/hubflow-jobs/"
    db_url: str | None = None
    backend: str = "local"
    namespace: str = "default"
    kubeflow_api: str = "auto"
    kubeconfig: str | None = None
    job_ttl: int = 3600

    @property
    def database_url(self) -> str:
        return self.db_url or f"sqlite:///{self.data_dir / 'jobs.sqlite'}"


def make_backend(config: ServiceConfig) -> JobBackend:
    """Local processes, or Kubeflow resources in the cluster the kubeconfig (or, inside a pod,
    the service account) points at."""
    if config.backend == "local":
        return LocalBackend(config.data_dir)
    return KubeflowBackend(
        config.data_dir,
        api_client(config.kubeconfig),
        config.namespace,
        config.kubeflow_api,
        config.job_ttl,
    )


def make_app(config: ServiceConfig) -> web.Application:
    """The application with its store, backend, scheduler and hub authentication."""
    config.data_dir.mkdir(parents=True, exist_ok=True)
    store = JobStore(config.database_url)
    backend = make_backend(config)
    profiles = profile_source(config.profile_paths)
    scheduler = Scheduler(store, backend, profiles.current)
    prefix = config.prefix.rstrip("/")
    job = r"(?P<job_id>[0-9a-f]{12})"
    return web.Application(
        [
            (rf"{prefix}/api/jobs/?", JobListHandler),
            (rf"{prefix}/api/jobs/{job}/?", JobHandler),
            (rf"{prefix}/api/jobs/{job}/cancel", CancelHandler),
            (rf"{prefix}/api/jobs/{job}/logs", LogsHandler),
            (rf"{prefix}/api/jobs/{job}/result", ResultHandler),
        ],
        store=store,
        backend=backend,
        scheduler=scheduler,
        hub_auth=HubAuth(cache_max_age=60),
        log=log,
    )


def _tick(scheduler: Scheduler) -> None:
    try:
        scheduler.tick()
    except Exception:
        log.exception("Scheduling round failed")


def run(config: ServiceConfig) -> None:
    """Serve the API on `config.ip` and schedule jobs until stopped."""
    app = make_app(config)
    scheduler: Scheduler = app.settings["scheduler"]
    scheduler.tick()  # jobs that ended or were queued while the service was down
    app.listen(config.port, address=config.ip)
    ioloop.PeriodicCallback(lambda: _tick(scheduler), TICK_INTERVAL_MS).start()
    log.info(
        "hubflow jobs service on http://%s:%d%s (pid %d)",
        config.ip,
        config.port,
        config.prefix,
        os.getpid(),
    )
    ioloop.IOLoop.current().start()
