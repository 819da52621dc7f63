"""hubflow tests: tests."""
