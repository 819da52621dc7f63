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


def stop_cleanly_while_starting() -> None:
    """In a hub that is loading its config: a SIGINT or SIGTERM before the hub runs (JupyterHub
    handles them once it does) stops what has started (services, proxy) and exits without a
    traceback. Nothing, for a config built outside a hub (tests, tools)."""
    from jupyterhub.app import JupyterHub  # a JupyterHub process's world

    if not JupyterHub.initialized():
        return
    app = JupyterHub.instance()
    loop = asyncio.get_running_loop()  # JupyterHub loads its config on its own loop

    async def stop(sig: signal.Signals) -> None:
        app.log.info("Received signal %s while starting, stopping", sig.name)
        # A service still starting dies quietly of SIGTERM (JupyterHub's SIGINT would show a
        # KeyboardInterrupt from wherever its Python was); a started one stops on either.
        for service in getattr(app, "_service_map", {}).values():
            pid = getattr(service.spawner, "pid", 0) if service.managed else 0
            if pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
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

    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, lambda sig=sig: asyncio.ensure_future(stop(sig)))
