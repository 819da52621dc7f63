"""hubflow spawner."""
