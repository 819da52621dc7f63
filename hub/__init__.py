"""hubflow hub."""
