"""Tests that need a real GPU (skipped on machines without nvidia-smi)."""
