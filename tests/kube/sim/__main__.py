"""Run the simulator by hand: python -m tests.kube.sim --port 6443 --kubeconfig /tmp/kubeconfig --nodes 3."""

from __future__ import annotations

import argparse
import signal
import tempfile
import threading
from pathlib import Path

import yaml

from tests.kube.sim.cluster import Simulator
from tests.kube.sim.nodes import NodeSpec, default_nodes


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.kube.sim", description=__doc__)
    parser.add_argument("--port", type=int, default=6443)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument(
        "--kubeconfig", type=Path, help="where to write the kubeconfig (default: in the data dir)"
    )
    parser.add_argument(
        "--data-dir", type=Path, help="volumes, pod dirs (default: a new temporary dir)"
    )
    parser.add_argument(
        "--nodes", type=int, default=3, help="N-1 CPU nodes and one node with 4 A100s"
    )
    parser.add_argument(
        "--nodes-file",
        type=Path,
        help="YAML list of node specs (name, cpu, memory, gpus, labels, taints)",
    )
    parser.add_argument("--token", help="bearer token clients must send (default: random)")
    parser.add_argument(
        "--missing-image", action="append", default=[], help="an image that fails to pull"
    )
    args = parser.parse_args(argv)
    nodes = (
        [NodeSpec.from_dict(n) for n in yaml.safe_load(args.nodes_file.read_text())]
        if args.nodes_file
        else default_nodes(args.nodes)
    )
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="k8s-sim-"))
    sim = Simulator(
        data_dir, nodes=nodes, port=args.port, host=args.host, token=args.token,
        missing_images=set(args.missing_image), kubeconfig_path=args.kubeconfig,
    )  # fmt: skip
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    with sim:
        print(
            f"API server: {sim.api_url}\nkubeconfig: {sim.kubeconfig_path}\ndata dir:   {data_dir}",
            flush=True,
        )
        print(
            f"nodes:      {', '.join(n.name for n in nodes)}\nCtrl-C stops it and every pod process.",
            flush=True,
        )
        done.wait()


if __name__ == "__main__":
    main()
