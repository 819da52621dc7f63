"""Tests of hubflow.launcher."""
