"""A hub for the database tests: the project's hub config, with

- the crash-point hook in the jobs service (tests/helpers/crashpoint: it kills the service at
  the step written in $HUBFLOW_CRASH_FILE);
- the culler given a jobs database it cannot reach (HUBFLOW_CULLER_JOBS_DB_URL), as a culler on
  a host without database access: it must not need one.
"""

import os
from pathlib import Path

from jupyterhub.services.service import _ServiceSpawner

from hubflow.hub.config import configure
from hubflow.hub.services import CULLER_SERVICE, JOBS_SERVICE

HOOK = Path(__file__).resolve().parents[1] / "helpers" / "crashpoint"

c = get_config()  # noqa: F821 (provided by JupyterHub when it loads this file)
configure(c)

extra = {
    JOBS_SERVICE: {
        "PYTHONPATH": os.pathsep.join(filter(None, [str(HOOK), os.environ.get("PYTHONPATH")])),
        "HUBFLOW_CRASH_FILE": os.environ["HUBFLOW_CRASH_FILE"],
    },
    CULLER_SERVICE: {"HUBFLOW_JOBS_DB_URL": os.environ["HUBFLOW_CULLER_JOBS_DB_URL"]},
}
c.JupyterHub.services = [
    dict(s, environment={**s.get("environment", {}), **extra.get(s["name"], {})})
    for s in c.JupyterHub.services
]
# a killed service is restarted at the hub's next poll of it: every second here (30 s by
# default; JupyterHub makes its services' spawners without the config, so their class default)
_ServiceSpawner.class_traits()["poll_interval"].default_value = 1
