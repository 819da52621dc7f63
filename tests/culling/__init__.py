"""Tests of hubflow.culling."""
