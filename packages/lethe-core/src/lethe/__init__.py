"""lethe: class-centric machine unlearning for PyTorch.

``lethe.unlearn(model, "delete", forget=..., forget_classes=[3])`` runs a registered method;
``lethe.list_methods()`` lists them. See ``docs/methods.md`` for the algorithms.
"""

from lethe import methods  # noqa: F401  (registers the methods)
from lethe._registry import (
    Registry,
    build_settings,
    get_method,
    list_methods,
    method_settings,
    parse_assignments,
    register_method,
    sample_augmentation,
    setting,
)
from lethe.api import UnlearnRecord, unlearn
from lethe.engine import Engine
from lethe.errors import CheckpointError, ConfigError, DataError, LetheError, NonFiniteLossError

__version__ = "0.1.0"

__all__ = [
    "CheckpointError",
    "ConfigError",
    "DataError",
    "Engine",
    "LetheError",
    "NonFiniteLossError",
    "Registry",
    "build_settings",
    "UnlearnRecord",
    "get_method",
    "list_methods",
    "method_settings",
    "parse_assignments",
    "register_method",
    "sample_augmentation",
    "setting",
    "unlearn",
]
