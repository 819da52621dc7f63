"""How the hub's services stop: on SIGINT (what the hub sends a managed service it stops, and
what Ctrl-C sends a terminal's foreground processes) or SIGTERM, with one log line and no
KeyboardInterrupt traceback."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from typing import Any

from tornado import ioloop

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def stop_on_signals(log: logging.Logger) -> None:
    """From now on SIGINT and SIGTERM stop the current IOLoop; call before starting it."""
    loop: asyncio.AbstractEventLoop = ioloop.IOLoop.current().asyncio_loop  # type: ignore[attr-defined]

    def stop(sig: signal.Signals) -> None:
        log.info("%s received, stopping", sig.name)
        loop.stop()

    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, stop, sig)


def stop_cleanly() -> None:
    """In a hub that is loading its config, make its stops clean (nothing, for a config built
    outside a hub: tests, tools):

    - a SIGINT or SIGTERM before the hub runs (JupyterHub handles them once it does) stops what
      has started (services, proxy) and exits without a traceback;
    - a hub that stops users' servers with it (`cleanup_servers`) stops them before its
      services (JupyterHub's order is the other way round), so that the jobs service is still
      there to cancel their jobs;
    - the services are sent SIGTERM before JupyterHub's SIGINT: a service still starting (the
      culler, which the hub does not wait for) dies of it quietly, where SIGINT would show a
      KeyboardInterrupt traceback from wherever its Python was; a started one stops on either;
    - while the hub stops, its services' health check is skipped: JupyterHub stops services
      first and its check, when due then, fails on the stopped one's missing server record
      (`'NoneType' object has no attribute 'proto'`).
    """
    from jupyterhub.app import JupyterHub  # a JupyterHub process's world

    if not JupyterHub.initialized():
        return
    app = JupyterHub.instance()
    loop = asyncio.get_running_loop()  # JupyterHub loads its config on its own loop
    check_services = app.check_services_health

    async def check_running_services() -> None:
        services = getattr(app, "_service_map", {}).values()
        if not any(s.managed and s.url and s.orm.server is None for s in services):
            await check_services()

    app.check_services_health = check_running_services  # type: ignore[method-assign]
    cleanup = app.cleanup

    async def cleanup_in_order() -> None:
        if app.cleanup_servers:
            stops = [
                user.stop(name)
                for user in list(app.users.values())
                for name, spawner in list(user.spawners.items())
                if spawner.active
            ]
            for failed in await asyncio.gather(*stops, return_exceptions=True):
                if isinstance(failed, Exception):
                    app.log.error("Failed to stop a user's server: %s", failed)
        terminate_services(app)
        await cleanup()

    app.cleanup = cleanup_in_order  # type: ignore[method-assign]

    async def stop(sig: signal.Signals) -> None:
        app.log.info("Received signal %s while starting, stopping", sig.name)
        if getattr(getattr(app, "proxy", None), "proxy_process", None) is None:
            app.cleanup_proxy = False  # not started yet
        try:
            await app.cleanup()
        except Exception as e:  # what is not set up yet has nothing to stop
            app.log.info("Stopped what had started (%s)", e)
        # Out now: the start it interrupted has nothing left to finish.
        logging.shutdown()
        sys.stdout.flush()
        os._exit(0)

    def on_signal(sig: signal.Signals) -> None:
        asyncio.ensure_future(stop(sig))

    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, on_signal, sig)


def terminate_services(app: Any) -> None:
    """SIGTERM to each managed service of `app` that has a process (see `stop_cleanly`)."""
    for service in getattr(app, "_service_map", {}).values():
        pid = getattr(service.spawner, "pid", 0) if service.managed else 0
        if pid:
            service.spawner.stop_polling()  # a stop, not a crash: no restart
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
