"""A managed service that dies (the jobs service, the culler) is restarted within a second or
two, not at JupyterHub's next poll of its process (every 30 s, `Spawner.poll_interval`, which
its services' spawner takes from no configuration).

While the service is down, a launcher's submit is retried and a notebook waits; so the hub looks
at its services' processes every `CHECK_EVERY_S` and, for one that ended, runs what JupyterHub's
own poll would have run: its restart.
"""

from __future__ import annotations

from typing import Any

from tornado.ioloop import PeriodicCallback

#: How often the hub looks whether a managed service's process ended (seconds).
CHECK_EVERY_S = 1.0


async def _restart_ended(app: Any) -> None:
    for service in list(getattr(app, "_service_map", {}).values()):
        spawner = getattr(service, "spawner", None)
        # JupyterHub polls a service it runs (and stops polling one it stops): only those
        if service.managed and spawner is not None and spawner._poll_callback is not None:
            await spawner.poll_and_notify()


def restart_services_promptly() -> None:
    """In a hub that is loading its config, look at its managed services every `CHECK_EVERY_S`
    (nothing, for a config built outside a hub: tests, tools)."""
    from jupyterhub.app import JupyterHub  # a JupyterHub process's world

    if not JupyterHub.initialized():
        return
    app = JupyterHub.instance()
    # JupyterHub loads its config on the loop it then runs
    PeriodicCallback(lambda: _restart_ended(app), CHECK_EVERY_S * 1000).start()
