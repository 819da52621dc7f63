"""hubflow tests: tests/helpers."""
