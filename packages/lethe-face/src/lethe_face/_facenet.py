"""Import facenet-pytorch with a clear error when it is missing.

facenet-pytorch 2.6 pins torch<2.3 and numpy<2 but runs on current versions, so it is installed
with ``pip install --no-deps facenet-pytorch==2.6.0`` (the Makefile does); ``requests``, which it
imports at module level, is then a dependency of lethe-face itself.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

from lethe.errors import ConfigError


def facenet() -> Any:
    """The ``facenet_pytorch`` module; a ConfigError if it is not installed."""
    if importlib.util.find_spec("facenet_pytorch") is None:
        raise ConfigError("facenet-pytorch is not installed: pip install --no-deps facenet-pytorch==2.6.0")
    return importlib.import_module("facenet_pytorch")
