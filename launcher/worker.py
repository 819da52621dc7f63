"""The bootstrap every rank runs (`python -m hubflow.launcher.worker`).

It is framework-neutral: the launcher (torchrun, the supervisor, or a training operator) has
set RANK, WORLD_SIZE, LOCAL_RANK, ...; the job channel gives the payload and takes back rank 0's
result and any rank's exception.
"""

from __future__ import annotations

import ast
import base64
import json
import linecache
import os
import runpy
import sys
import traceback
import types
from typing import Any

import cloudpickle

from hubflow.launcher.channel import channel_from_env
from hubflow.launcher.contract import GPUS_PER_WORKER_ENV, JOB_GPUS_ENV
from hubflow.launcher.payload import Payload

CELL_FILENAME = "<distributed cell>"

#: Set by the supervisor: the GPU ids the job holds, and how many each local rank gets.


def split_gpus(gpus: str, per_worker: int, local_rank: int) -> str:
    """This local rank's share of the job's GPU ids, as CUDA_VISIBLE_DEVICES."""
    ids = [g for g in gpus.split(",") if g]
    return ",".join(ids[local_rank * per_worker : (local_rank + 1) * per_worker])


def rank_environment() -> None:
    """A TFJob's ranks get TF_CONFIG, not RANK: set RANK and WORLD_SIZE from it; then start in
    the workspace (a pod's working directory is the image's)."""
    tf_config = os.environ.get("TF_CONFIG")
    if "RANK" not in os.environ and tf_config:
        config = json.loads(tf_config)
        os.environ["RANK"] = str(config["task"]["index"])
        os.environ["WORLD_SIZE"] = str(sum(len(hosts) for hosts in config["cluster"].values()))
    workspace = os.environ.get("HUBFLOW_WORKSPACE")
    if workspace and os.path.isdir(workspace):
        os.chdir(workspace)


def run_cell(code: str, namespace: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """Run a cell like IPython does (the last expression is its value) in a `__main__`-like
    namespace; return (value, namespace)."""
    ns = types.ModuleType("__main__").__dict__
    ns.update(namespace)
    return exec_cell(code, ns), ns


def exec_cell(code: str, ns: dict[str, Any]) -> Any:
    """Run a cell in the namespace `ns` (kept by a warm rank between cells); its value."""
    linecache.cache[CELL_FILENAME] = (len(code), None, code.splitlines(True), CELL_FILENAME)
    tree = ast.parse(code, CELL_FILENAME)
    last = tree.body[-1] if tree.body else None
    if isinstance(last, ast.Expr):
        tree.body.pop()
    exec(compile(tree, CELL_FILENAME, "exec"), ns)
    if isinstance(last, ast.Expr):
        return eval(compile(ast.Expression(last.value), CELL_FILENAME, "eval"), ns)
    return None


def run_payload(payload: Payload) -> tuple[Any, dict[str, Any]]:
    """Run the payload; return (return value, namespace the pulled variables come from)."""
    if payload.kind == "cell":
        return run_cell(payload.code, dict(payload.namespace))
    if payload.kind == "function":
        assert payload.function is not None
        return payload.function(*payload.args, **payload.kwargs), {}
    sys.argv = [payload.script, *payload.argv]
    return None, runpy.run_path(payload.script, run_name="__main__")


def _user_traceback(exc: BaseException) -> types.TracebackType | None:
    """The traceback without this bootstrap's own frames."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
        tb = tb.tb_next
    return tb


def describe_exception(exc: BaseException) -> dict[str, Any]:
    """An exception as JSON: type, message, formatted traceback and (if it pickles) itself."""
    formatted = traceback.format_exception(type(exc), exc, _user_traceback(exc))
    try:
        pickled: str | None = base64.b64encode(cloudpickle.dumps(exc)).decode()
    except Exception:
        pickled = None
    return {
        "type": f"{type(exc).__module__}.{type(exc).__qualname__}",
        "message": str(exc),
        "traceback": "".join(formatted),
        "exception": pickled,
    }


def collect_result(payload: Payload, value: Any, namespace: dict[str, Any]) -> bytes:
    """Rank 0's result: the return value and the pulled variables; a missing one is an error."""
    missing = [name for name in payload.pull if name not in namespace]
    if missing:
        raise NameError(f"--pull {missing[0]}: the job defined no variable {missing[0]!r}")
    variables = {name: namespace[name] for name in payload.pull}
    try:
        cloudpickle.dumps(value)
    except Exception as e:
        print(
            f"hubflow: the cell's value ({type(value).__name__}) does not pickle: {e}",
            file=sys.stderr,
        )
        value = None
    return bytes(cloudpickle.dumps({"value": value, "variables": variables}))


#: How much of each value's repr the result's text keeps.
SUMMARY_REPR_CHARS = 2000


def summarize_result(value: Any, variables: dict[str, Any]) -> str:
    """Rank 0's result as text (each value's repr, cut short): what anyone but the job's owner
    sees of it, since loading the pickle runs code."""

    def short(value: Any) -> str:
        try:
            text = repr(value)
        except Exception as e:
            text = f"<{type(value).__name__}: repr failed: {e}>"
        return text if len(text) <= SUMMARY_REPR_CHARS else text[:SUMMARY_REPR_CHARS] + "..."

    lines = [f"value: {short(value)}"]
    lines += [f"{name} = {short(variable)}" for name, variable in variables.items()]
    return "\n".join(lines) + "\n"


def _close_process_group() -> None:
    """Destroy a torch.distributed process group the user code left open: left to interpreter
    shutdown, gloo aborts the process ("terminate called without an active exception")."""
    dist = sys.modules.get("torch.distributed")
    if dist is not None and dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def main() -> int:
    """Run this rank's share of the job; exit status 0 on success, 1 on an exception."""
    channel = channel_from_env()
    if channel is None:
        print(
            "hubflow worker: neither HUBFLOW_JOB_DIR nor HUBFLOW_JOB_PAYLOAD is set",
            file=sys.stderr,
        )
        return 2
    rank_environment()
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    channel.attach_output(rank)
    if JOB_GPUS_ENV in os.environ:
        per_worker = int(os.environ.get(GPUS_PER_WORKER_ENV, "0"))
        os.environ["CUDA_VISIBLE_DEVICES"] = split_gpus(
            os.environ[JOB_GPUS_ENV], per_worker, local_rank
        )
    sys.path.insert(0, os.getcwd())
    channel.mark_started(rank)
    try:
        payload: Payload = cloudpickle.loads(channel.read_payload())
        value, namespace = run_payload(payload)
        if rank == 0:
            result = collect_result(payload, value, namespace)
            variables = {name: namespace[name] for name in payload.pull}
            channel.write_summary(summarize_result(value, variables))
            channel.write_result(result)
    except SystemExit as exc:
        if exc.code in (0, None):
            return 0
        channel.write_error(rank, describe_exception(exc))
        return exc.code if isinstance(exc.code, int) else 1
    except BaseException as exc:
        error = describe_exception(exc)
        channel.write_error(rank, error)
        sys.stderr.write(error["traceback"])
        return 1
    finally:
        _close_process_group()
        sys.stdout.flush()
        sys.stderr.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
