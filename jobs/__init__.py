"""hubflow jobs."""
