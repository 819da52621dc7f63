"""Tests of hubflow.spawner."""
