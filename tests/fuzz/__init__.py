"""Fuzzing-derived tests: hostile inputs to the public API."""
