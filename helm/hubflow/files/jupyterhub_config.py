"""The hub's config in the Helm chart: hubflow's own wiring from the HUBFLOW_* variables the
Deployment sets, then what only the chart knows (an external hub database, extraConfig)."""

import os
from pathlib import Path

from hubflow.hub.config import configure

c = get_config()  # noqa: F821 (provided by JupyterHub when it loads this file)
configure(c)

# hub.database.type external: the hub's database URL comes from a Secret, through the environment.
if os.environ.get("HUBFLOW_HUB_DB_URL"):
    c.JupyterHub.db_url = os.environ["HUBFLOW_HUB_DB_URL"]

# hub.extraConfig: the operator's snippets, mounted beside this file, in name order.
for snippet in sorted(Path(__file__).parent.glob("extra-*.py")):
    exec(compile(snippet.read_text(encoding="utf-8"), str(snippet), "exec"))
