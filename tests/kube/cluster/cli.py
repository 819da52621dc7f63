"""The test cluster by hand: `up` starts it in the background and prints the admin kubeconfig path
(`make cluster`), `down` stops it and removes its network namespaces (`make cluster-down`)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.kube.cluster.controlplane import DEFAULT_STATE, REPO, ControlPlane, build_binaries


def _alive(pid_file: Path) -> int | None:
    try:
        pid = int(pid_file.read_text())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def up(state: Path) -> int:
    if _alive(state / "pid") and (state / "ready").exists():
        print(state / "admin.kubeconfig")
        return 0
    bins = build_binaries()
    state.mkdir(parents=True, exist_ok=True)
    for stale in ("ready", "failed"):
        (state / stale).unlink(missing_ok=True)
    log = (state / "serve.log").open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.kube.cluster", "serve", str(state), str(bins)],
        cwd=REPO, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        start_new_session=True, env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    while not (state / "ready").exists():
        if proc.poll() is not None or (state / "failed").exists():
            sys.stderr.write((state / "serve.log").read_text(errors="replace")[-4000:])
            print(f"the cluster did not start; logs in {state}/logs", file=sys.stderr)
            return 1
        time.sleep(0.5)
    print(f"cluster up in {(state / 'ready').read_text().strip()}s; the hub's account: "
          f"{state / 'hub.kubeconfig'}; logs: {state / 'logs'}", file=sys.stderr)  # fmt: skip
    print(state / "admin.kubeconfig")
    return 0


def serve(state: Path, bins: Path) -> int:
    from tests.kube.cluster.hubaccount import hub_kubeconfig, install_runtime

    (state / "pid").write_text(str(os.getpid()))
    stop = False

    def on_signal(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    started = time.monotonic()
    cp = ControlPlane(state, bins)
    try:
        cp.start()
        install_runtime(cp)
        hub_kubeconfig(cp, state / "hub.kubeconfig")
        (state / "ready").write_text(f"{time.monotonic() - started:.0f}")
        while not stop:
            time.sleep(0.5)
    except BaseException as error:
        (state / "failed").write_text(repr(error))
        raise
    finally:
        cp.stop()
        (state / "ready").unlink(missing_ok=True)
        Path(f"/run/hubflow-cluster-{cp.index}.pid").unlink(missing_ok=True)
    return 0


def down(state: Path) -> int:
    pid = _alive(state / "pid")
    if pid is None:
        print("no cluster running", file=sys.stderr)
        return 0
    os.kill(pid, signal.SIGTERM)
    for _ in range(300):
        if _alive(state / "pid") is None:
            break
        time.sleep(0.1)
    (state / "pid").unlink(missing_ok=True)
    print("cluster stopped", file=sys.stderr)
    return 0


def main() -> None:
    args = sys.argv[1:] or ["up"]
    state = DEFAULT_STATE
    if args[0] == "up":
        sys.exit(up(state))
    if args[0] == "down":
        sys.exit(down(state))
    if args[0] == "serve":
        sys.exit(serve(Path(args[1]), Path(args[2])))
    sys.exit(f"usage: python -m tests.kube.cluster up|down (not {args[0]!r})")
