"""Tests of hubflow.jobs."""
