"""The jobs service's tornado application and its periodic scheduling."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from jupyterhub.services.auth import HubAuth
from tornado import ioloop, web

from hubflow.hub.settings import HubflowSettings, JobsSettings
from hubflow.jobs.backend import JobBackend
from hubflow.jobs.busy import BusyServersHandler
from hubflow.jobs.db import SchemaError
from hubflow.jobs.handlers import (
    CancelHandler,
    JobHandler,
    JobListHandler,
    LogsHandler,
    NotFoundHandler,
    ResultHandler,
)
from hubflow.jobs.kubeflow.backend import KubeflowBackend
from hubflow.jobs.kubeflow.cluster import api_client
from hubflow.jobs.kubeflow.pools import KubePoolBackend
from hubflow.jobs.limits import (
    Limits,
    RequestPace,
    follow_slots,
    submit_body_bytes,
    upload_slots,
)
from hubflow.jobs.local import LocalBackend
from hubflow.jobs.local_pool import LocalPoolBackend
from hubflow.jobs.openapi import OpenAPIHandler
from hubflow.jobs.pools import PoolManager, pool_routes, server_running
from hubflow.jobs.root import ServiceRootHandler
from hubflow.jobs.scheduler import Scheduler
from hubflow.jobs.store import JobStore
from hubflow.profiles.source import profile_source

log = logging.getLogger(__name__)

#: How long the hub's answer about a token is reused: a revoked token stops working within it.
TOKEN_CACHE_S = 5
#: How often job states are brought up to date and queued jobs considered.
TICK_INTERVAL_MS = 200


@dataclass(frozen=True)
class ServiceConfig:
    """The hub's settings the service runs with, and the path prefix JupyterHub gave it."""

    hubflow: HubflowSettings
    jobs: JobsSettings
    prefix: str = "/services/hubflow-jobs/"

    @classmethod
    def from_env(cls) -> ServiceConfig:
        """As the hub started it: its settings and JUPYTERHUB_SERVICE_PREFIX."""
        prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", cls.prefix)
        return cls(HubflowSettings.from_env(), JobsSettings.from_env(), prefix)


def make_backend(config: ServiceConfig) -> JobBackend:
    """Local processes, or Kubeflow resources in the cluster the kubeconfig (or, inside a pod,
    the service account) points at."""
    data_dir = config.hubflow.data_path
    if config.hubflow.mode == "local":
        return LocalBackend(data_dir)
    return KubeflowBackend(
        data_dir,
        api_client(),
        config.hubflow.namespace,
        config.jobs.kubeflow_api,
        config.jobs.job_ttl,
    )


def make_app(config: ServiceConfig) -> web.Application:
    """The application with its store, backend, scheduler and hub authentication."""
    data_dir = config.hubflow.data_path
    data_dir.mkdir(parents=True, exist_ok=True)
    store = JobStore(
        config.jobs.database_url(data_dir),
        config.jobs.db_pool_size,
        config.jobs.db_max_overflow,
        config.jobs.db_upgrade,
    )
    backend = make_backend(config)
    profiles = profile_source(config.hubflow.profile_paths)
    scheduler = Scheduler(store, backend, profiles.current, retention=config.jobs.job_retention)
    prefix = config.prefix.rstrip("/")
    limits = Limits.from_settings(config.jobs)
    job = r"(?P<job_id>[0-9a-f]{12})"
    pool_backend = (
        KubePoolBackend(data_dir, backend)
        if isinstance(backend, KubeflowBackend)
        else LocalPoolBackend(data_dir)
    )
    pools = PoolManager(pool_backend, config.jobs, server_running)
    scheduler.other_holdings = pools.holdings  # a pool's own GPUs keep batch jobs waiting
    return web.Application(
        [
            (rf"{prefix}/?", ServiceRootHandler, {"prefix": prefix}),
            (rf"{prefix}/api/jobs/?", JobListHandler),
            (rf"{prefix}/api/jobs/{job}/?", JobHandler),
            (rf"{prefix}/api/jobs/{job}/cancel", CancelHandler),
            (rf"{prefix}/api/jobs/{job}/logs", LogsHandler),
            (rf"{prefix}/api/jobs/{job}/result", ResultHandler),
            (rf"{prefix}/api/openapi.json", OpenAPIHandler),
            (rf"{prefix}/api/busy-servers", BusyServersHandler),
            *pool_routes(prefix),
        ],
        pools=pools,
        store=store,
        backend=backend,
        scheduler=scheduler,
        limits=limits,
        follow_slots=follow_slots(limits),
        upload_slots=upload_slots(limits),
        request_pace=RequestPace(
            limits.max_request_rate, limits.request_burst, limits.request_wait
        ),
        default_handler_class=NotFoundHandler,
        hub_auth=HubAuth(cache_max_age=TOKEN_CACHE_S),
        log=log,
    )


def _tick(scheduler: Scheduler) -> None:
    try:
        scheduler.tick()
    except Exception:
        log.exception("Scheduling round failed")


def run(config: ServiceConfig) -> None:
    """Serve the API on `config.ip` and schedule jobs until stopped (or stop at once, saying
    why, when the jobs database's schema is not this hubflow's)."""
    try:
        app = make_app(config)
    except SchemaError as e:
        log.error("Not starting: %s", e)
        raise SystemExit(1) from None
    scheduler: Scheduler = app.settings["scheduler"]
    ioloop.IOLoop.current().run_sync(scheduler.recover)  # what a crash interrupted
    scheduler.tick()  # jobs that ended or were queued while the service was down
    backend: JobBackend = app.settings["backend"]
    # each handler streams its body and sets its own limit; this is only the ceiling
    app.listen(
        config.hubflow.jobs_port,
        address=config.hubflow.jobs_ip,
        max_body_size=2 * submit_body_bytes(backend.max_payload_bytes),
    )
    ioloop.PeriodicCallback(lambda: _tick(scheduler), TICK_INTERVAL_MS).start()
    log.info(
        "hubflow jobs service on http://%s:%d%s (pid %d)",
        config.hubflow.jobs_ip,
        config.hubflow.jobs_port,
        config.prefix,
        os.getpid(),
    )
    ioloop.IOLoop.current().start()
