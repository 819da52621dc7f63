"""Run the culling service: `python -m hubflow.hub.culling --data-dir DIR --profiles FILE
--jobs-db-url URL`; the policy defaults come from HUBFLOW_CULL_* (see docs/admin.md).

JupyterHub starts it as a managed service (see wiring.py) with JUPYTERHUB_API_TOKEN and
JUPYTERHUB_API_URL in its environment.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from hubflow.hub.culling.service import run


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m hubflow.hub.culling", description=__doc__)
    parser.add_argument("--data-dir", type=Path, required=True, help="the hub's data dir")
    parser.add_argument("--profiles", action="append", default=[], help="profile file (repeatable)")
    parser.add_argument("--jobs-db-url", required=True, help="the jobs service's database")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="[%(levelname)s %(asctime)s hubflow-culler] %(message)s"
    )
    run(args.data_dir.resolve(), args.profiles, args.jobs_db_url)


if __name__ == "__main__":
    main()
