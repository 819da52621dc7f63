"""hubflow tests: tests/unit."""
