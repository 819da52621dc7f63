"""`hubflow-job`: submit a script as a distributed job, list, follow, show and cancel jobs.

hubflow-job submit train.py --lr 0.1 --workers 4 [--gpus-per-worker 1] [--follow]
hubflow-job list | status ID | logs ID [--follow] | cancel ID | stop POOL_ID
"""

from __future__ import annotations

import argparse
import sys

from hubflow.launcher.api import Job, attach, job_error, submit_payload
from hubflow.launcher.client import JobsAPIError, JobsClient
from hubflow.launcher.monitor import JobMonitor, status_line
from hubflow.launcher.options import add_submit_options, non_negative
from hubflow.launcher.payload import script_payload
from hubflow.launcher.pool import pool_status_line


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hubflow-job", description="Distributed jobs from your server."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    submit = commands.add_parser("submit", help="run a Python script on every rank")
    submit.add_argument("script", help="path of the script (relative to the current directory)")
    add_submit_options(submit)
    submit.add_argument("--follow", "-f", action="store_true", help="stream logs until it ends")
    commands.add_parser("list", help="your jobs and warm pools")
    commands.add_parser("stop", help="stop a warm pool").add_argument("pool_id")
    for name, text in (("status", "a job's state"), ("cancel", "cancel a job")):
        commands.add_parser(name, help=text).add_argument("job_id")
    logs = commands.add_parser("logs", help="a job's logs")
    logs.add_argument("job_id")
    logs.add_argument("--follow", "-f", action="store_true")
    logs.add_argument("--rank", type=non_negative, default=None)
    return parser


def _to_stderr(text: str) -> None:
    print(text, file=sys.stderr)


def _follow(job: Job, rank: int | None = None) -> int:
    model = JobMonitor(job, show_status=_to_stderr, rank=rank).run()
    if model["state"] == "Failed":
        print(job_error(model).__cause__, file=sys.stderr)
    return 0 if model["state"] == "Succeeded" else 1


def run(args: argparse.Namespace, script_args: list[str]) -> int:
    if args.command == "submit":
        job = submit_payload(
            script_payload(args.script, script_args),
            workers=args.workers,
            gpus_per_worker=args.gpus_per_worker,
            framework=args.framework,
            name=args.name,
        )
        print(job.id)
        return _follow(job) if args.follow else 0
    if args.command == "list":
        client = JobsClient.from_env()
        for model in client.list():
            print(status_line(model))
        for model in client.list_pools():
            print(pool_status_line(model))
        return 0
    if args.command == "stop":
        print(pool_status_line(JobsClient.from_env().stop_pool(args.pool_id)))
        return 0
    job = attach(args.job_id)
    if args.command == "status":
        print(status_line(job.model))
    elif args.command == "cancel":
        print(status_line(job.cancel()))
    elif args.follow:
        return _follow(job, args.rank)
    else:
        for line in job.logs(rank=args.rank):
            print(line)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `hubflow-job` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    # Everything after the script belongs to the script: `submit train.py --lr 0.1 --workers 2`
    # takes --workers for us only when it comes before the script or is ours by name.
    args, rest = parser.parse_known_args(argv)
    if args.command != "submit" and rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    try:
        return run(args, rest)
    except JobsAPIError as e:
        print(f"hubflow-job: {e.status}: {e}", file=sys.stderr)
        return 1
    except (RuntimeError, KeyboardInterrupt) as e:
        print(f"hubflow-job: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
