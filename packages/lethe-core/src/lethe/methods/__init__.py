"""Unlearning methods, one per module; importing this package registers them all."""

from lethe.methods import delete, svd  # noqa: F401
