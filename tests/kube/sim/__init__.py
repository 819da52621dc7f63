"""A Kubernetes cluster simulator for tests: API server, scheduler, kubelet stand-in, faults."""
