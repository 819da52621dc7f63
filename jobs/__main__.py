"""Run the jobs service: `python -m hubflow.jobs`.

JupyterHub starts it as a managed service (hub/services.py) with JUPYTERHUB_API_TOKEN,
JUPYTERHUB_API_URL, JUPYTERHUB_SERVICE_PREFIX and the hub's settings (HUBFLOW_*,
docs/settings.md) in its environment.
"""

from __future__ import annotations

import logging

from hubflow.hub.stopping import stop_on_signals
from hubflow.jobs.app import ServiceConfig, run


def main() -> None:
    """Log in the hub's style and serve until stopped."""
    logging.basicConfig(
        level=logging.INFO, format="[%(levelname)s %(asctime)s hubflow-jobs] %(message)s"
    )
    stop_on_signals(logging.getLogger("hubflow-jobs"))
    run(ServiceConfig.from_env())


if __name__ == "__main__":
    main()
