"""hubflow hub/jobs."""
