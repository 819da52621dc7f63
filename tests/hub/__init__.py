"""Tests of hubflow.hub."""
