"""hubflow launcher."""
