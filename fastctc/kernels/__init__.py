"""Numba-compiled cores. Inputs are validated by the public wrappers."""
