"""Faithful reference implementations of the published procedures: the yardstick of benchmarks/speed.py,
not part of the library."""
