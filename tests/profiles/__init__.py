"""Tests of hubflow.profiles."""
