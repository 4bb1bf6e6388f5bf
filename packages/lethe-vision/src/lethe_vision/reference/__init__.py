"""Faithful reference implementations of the published procedures: the yardstick of the speed
benchmarks (``lethe_classification.speed``, ``lethe_segmentation.speed``), not part of the library."""
