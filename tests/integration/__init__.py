"""hubflow tests: tests/integration."""
