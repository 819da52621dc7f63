"""IPython magics: `%%distribute` runs a cell as a distributed job; `%jobs` and `%job` list,
show, cancel and re-attach to jobs."""

from __future__ import annotations

from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from IPython.display import display

from hubflow.launcher.api import Job, attach, full_traceback, shown_as, submit_payload
from hubflow.launcher.client import JobsClient
from hubflow.launcher.monitor import JobMonitor, status_line
from hubflow.launcher.options import SUBMIT_OPTIONS
from hubflow.launcher.payload import cell_payload
from hubflow.launcher.pool import pool_status_line, take_over, warm_pool


def _names(text: str | None) -> list[str]:
    return [name.strip() for name in (text or "").split(",") if name.strip()]


class _StatusDisplay:
    """One output line updated in place (an IPython display with a display_id)."""

    def __init__(self) -> None:
        self.handle: Any = None

    def __call__(self, text: str) -> None:
        data = {"text/plain": text}
        if self.handle is None:
            self.handle = display(data, raw=True, display_id=True)
        else:
            self.handle.update(data, raw=True)


def watch(job: Job, timeout: float | None = None) -> dict[str, Any]:
    """Show a job live in the current cell until it ends; its final model. An interrupt or the
    timeout cancels the job and is shown in one line, not through hubflow's frames."""
    monitor = JobMonitor(job, print_line=print, show_status=_StatusDisplay(), timeout=timeout)
    try:
        return monitor.run()
    except KeyboardInterrupt as e:
        shown_as(e, [f"KeyboardInterrupt: the cell was interrupted; job {job.id} was cancelled"])
        raise
    except TimeoutError as e:
        shown_as(e, [f"TimeoutError: {e}"])
        raise


def submit_options(magic: Any) -> Any:
    """Decorate a magic with the shared submit options (launcher/options.py)."""
    for flags, keywords in reversed(SUBMIT_OPTIONS):
        magic = argument(*flags, **keywords)(magic)
    return magic


@magics_class
class DistributeMagics(Magics):
    """%%distribute, %jobs, %job."""

    @magic_arguments()
    @submit_options
    @argument("--push", default="", help="comma-separated variables to send besides those found")
    @argument("--pull", default="", help="comma-separated variables to bring back from rank 0")
    @argument("--no-auto-push", action="store_true", help="send only the --push variables")
    @argument("--no-wait", action="store_true", help="submit and return the job handle at once")
    @argument("--timeout", type=float, default=None, help="cancel the job after S seconds")
    @argument("--warm", action="store_true", help="run on this kernel's warm pool of that shape")
    @argument("--restart", action="store_true", help="with --warm: start a new pool")
    @argument(
        "--traceback",
        choices=("short", "full"),
        default="short",
        help="on an error: the rank's own traceback only (short), or hubflow's frames too (full)",
    )
    @cell_magic
    def distribute(self, line: str, cell: str) -> Any:
        """Run this cell on every rank of a distributed job; see docs/launcher.md."""
        args = parse_argstring(self.distribute, line)
        try:
            return self._distribute(args, cell)
        except BaseException as e:
            if args.traceback == "full":
                full_traceback(e)
            raise

    def _distribute(self, args: Any, cell: str) -> Any:
        pull = _names(args.pull)
        if args.warm:
            return self._warm(args, cell, pull)
        payload = cell_payload(
            cell,
            self.shell.user_ns,  # type: ignore[union-attr]
            push=_names(args.push),
            pull=pull,
            auto_push=not args.no_auto_push,
        )
        job = submit_payload(
            payload,
            workers=args.workers,
            gpus_per_worker=args.gpus_per_worker,
            framework=args.framework,
            name=args.name,
        )
        if args.no_wait:
            print(f"submitted job {job.id}; follow it with %job attach {job.id}")
            return job
        return self._finish(job, watch(job, args.timeout))

    def _warm(self, args: Any, cell: str, pull: list[str]) -> Any:
        """Run the cell on the warm pool of its shape; rank 0's pulled variables come back."""
        if args.no_wait or args.timeout is not None:
            raise UsageError("--no-wait and --timeout do not apply to --warm cells")
        pool = warm_pool(
            args.workers,
            args.gpus_per_worker,
            args.framework,
            name=args.name,
            restart=args.restart,
        )
        outcome = pool.run_cell(
            cell,
            self.shell.user_ns,  # type: ignore[union-attr]
            push=_names(args.push),
            pull=pull,
            auto_push=not args.no_auto_push,
            show_status=_StatusDisplay(),
        )
        self.shell.user_ns.update(outcome["variables"])  # type: ignore[union-attr]
        return outcome["value"]

    def _finish(self, job: Job, model: dict[str, Any]) -> Any:
        """Bring rank 0's pulled variables into the notebook; return the cell's value."""
        outcome = job.outcome()
        self.shell.user_ns.update(outcome["variables"])  # type: ignore[union-attr]
        return outcome["value"]

    @line_magic
    def jobs(self, line: str) -> None:
        """List your jobs and warm pools."""
        client = JobsClient.from_env()
        jobs, pools = client.list(), client.list_pools()
        if not jobs and not pools:
            print("no jobs")
        for model in jobs:
            print(status_line(model))
        for model in pools:
            print(pool_status_line(model))

    @magic_arguments()
    @argument("action", choices=("status", "stop", "take"))
    @argument("pool_id")
    @line_magic
    def pool(self, line: str) -> None:
        """%pool status|stop|take ID: a warm pool's state, stop it (its ranks end), or take it
        over in this kernel (after a restart: the next --warm cells of its shape run on it)."""
        args = parse_argstring(self.pool, line)
        client = JobsClient.from_env()
        if args.action == "take":
            print(pool_status_line(take_over(args.pool_id, client).model))
            return
        get = client.get_pool if args.action == "status" else client.stop_pool
        print(pool_status_line(get(args.pool_id)))

    @magic_arguments()
    @argument("action", choices=("status", "logs", "cancel", "attach"))
    @argument("job_id")
    @line_magic
    def job(self, line: str) -> Any:
        """%job status|logs|cancel|attach ID."""
        args = parse_argstring(self.job, line)
        job = attach(args.job_id)
        if args.action == "status":
            print(status_line(job.model))
        elif args.action == "logs":
            for text in job.logs():
                print(text)
        elif args.action == "cancel":
            print(status_line(job.cancel()))
        else:
            return self._finish(job, watch(job))
        return None
