"""Run the culling service: `python -m hubflow.culling`.

JupyterHub starts it as a managed service (hub/services.py) with JUPYTERHUB_API_TOKEN,
JUPYTERHUB_API_URL and the hub's settings (HUBFLOW_*, docs/settings.md) in its environment.
"""

from __future__ import annotations

import logging

from hubflow.culling.service import run
from hubflow.hub.stopping import stop_on_signals


def main() -> None:
    """Log in the hub's style and cull until stopped."""
    logging.basicConfig(
        level=logging.INFO, format="[%(levelname)s %(asctime)s hubflow-culler] %(message)s"
    )
    stop_on_signals(logging.getLogger("hubflow-culler"))
    run()


if __name__ == "__main__":
    main()
