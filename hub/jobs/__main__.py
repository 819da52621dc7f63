"""Run the jobs service: `python -m hubflow.hub.jobs --data-dir DIR --port N --profiles FILE`.

JupyterHub starts it as a managed service (see wiring.py) with JUPYTERHUB_API_TOKEN,
JUPYTERHUB_API_URL and JUPYTERHUB_SERVICE_PREFIX in its environment.
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from hubflow.hub.jobs.app import ServiceConfig, run
from hubflow.hub.jobs.kubeflow.discovery import KUBEFLOW_APIS


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m hubflow.hub.jobs", description=__doc__)
    parser.add_argument("--data-dir", type=Path, required=True, help="jobs live in DATA_DIR/jobs")
    parser.add_argument("--port", type=int, required=True, help="port to listen on")
    parser.add_argument(
        "--ip", default="127.0.0.1", help="address to listen on (0.0.0.0 in a cluster)"
    )
    parser.add_argument("--profiles", action="append", default=[], help="profile file (repeatable)")
    parser.add_argument(
        "--db-url", default=None, help="SQLAlchemy URL (default: SQLite in DATA_DIR)"
    )
    parser.add_argument(
        "--backend",
        choices=("local", "kubernetes"),
        default="local",
        help="run jobs as local processes or as Kubeflow training jobs",
    )
    parser.add_argument(
        "--namespace", default="default", help="kubernetes: namespace when the server has none"
    )
    parser.add_argument(
        "--kubeflow-api",
        choices=KUBEFLOW_APIS,
        default="auto",
        help="kubernetes: TrainJob where served, else PyTorchJob/TFJob (auto), or force one",
    )
    parser.add_argument(
        "--kubeconfig", default=None, help="kubernetes: kubeconfig (default: in-cluster or ~/.kube)"
    )
    parser.add_argument(
        "--job-ttl", type=int, default=3600, help="kubernetes: seconds a finished job is kept"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="[%(levelname)s %(asctime)s hubflow-jobs] %(message)s"
    )
    run(
        ServiceConfig(
            data_dir=args.data_dir.resolve(),
            profile_paths=tuple(args.profiles),
            port=args.port,
            ip=args.ip,
            prefix=os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/services/hubflow-jobs/"),
            db_url=args.db_url,
            backend=args.backend,
            namespace=args.namespace,
            kubeflow_api=args.kubeflow_api,
            kubeconfig=args.kubeconfig,
            job_ttl=args.job_ttl,
        )
    )


if __name__ == "__main__":
    main()
