"""hubflow tests: tests/kube."""
