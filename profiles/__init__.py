"""hubflow profiles."""
