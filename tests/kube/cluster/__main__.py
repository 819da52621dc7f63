"""`python -m tests.kube.cluster up|down|status`: the test cluster by hand (`make cluster`)."""

from tests.kube.cluster.cli import main

main()
