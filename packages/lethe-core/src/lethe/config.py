"""One reader for every YAML config: nested dataclasses built from a mapping with one-line errors.

A task declares its config as dataclasses (sections are dataclass-typed fields; lists are
``tuple[X, ...]``; free mappings ``dict[str, X]``; ``Any`` is passed through) and reads a parsed
YAML mapping with ``read_config(TaskConfig, mapping)``. Every error names the key's full path
(``config.model.width must be an integer, at least 1, got 'wide'``); an unknown key names the
section's keys and the closest one. Ranges declared with ``lethe.setting(..., ge=1)`` are checked
here; checks between fields belong to the class's ``__post_init__`` (raising ``ConfigError``).
"""

from __future__ import annotations

import dataclasses
import difflib
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

from lethe._registry import _hints, _in_bounds, _split_hint, _tuple_item, _typed, expected, field_bounds
from lethe.errors import ConfigError

T = TypeVar("T")


def _short(value: Any) -> str:
    shown = repr(value)
    return shown if len(shown) <= 80 else shown[:60] + "..." + shown[-8:]


def _expected(hint: Any, bounds: Any = None) -> str:
    """``expected``'s words for a YAML value (lists, not the command line's comma-separated ones)."""
    return expected(hint, bounds).replace("comma-separated list", "list").replace(" list of Any", " list")


def _unknown_key(key: str, where: str, known: list[str]) -> ConfigError:
    close = difflib.get_close_matches(key, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return ConfigError(f"{where} has no key {key!r}{hint}; its keys are {', '.join(known)}")


def _read_value(value: Any, hint: Any, where: str, field: dataclasses.Field | None = None) -> Any:
    """``value`` as type ``hint`` (sections read recursively, lists as tuples); ConfigError naming
    ``where`` if it does not fit."""
    inner, optional = _split_hint(hint)
    if value is None:
        if optional or inner is Any:
            return None
        raise ConfigError(f"{where} must be {_expected(hint)}, got none")
    if dataclasses.is_dataclass(inner):
        return read_config(inner, value, where)
    bounds = field_bounds(field) if field is not None else None
    item = _tuple_item(inner)
    if item is not None:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where} must be a list, got {_short(value)}")
        items = tuple(_read_value(v, item, f"{where}[{i}]") for i, v in enumerate(value))
        if bounds is not None and not _in_bounds(items, hint, bounds):
            raise ConfigError(f"{where} must be {_expected(hint, bounds)}, got {_short(value)}")
        return items
    origin = typing.get_origin(inner)
    if origin in (dict, Mapping) or inner is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where} must be a mapping, got {_short(value)}")
        args = typing.get_args(inner)
        value_hint = args[1] if len(args) == 2 else Any
        return {str(k): _read_value(v, value_hint, f"{where}.{k}") for k, v in value.items()}
    if inner is float and _typed(value, int):
        value = float(value)
    if not _typed(value, hint) or (bounds is not None and not _in_bounds(value, hint, bounds)):
        raise ConfigError(f"{where} must be {_expected(hint, bounds)}, got {_short(value)}")
    return value


def read_config(cls: type[T], mapping: Any, where: str = "config") -> T:
    """Dataclass ``cls`` from ``mapping`` (a parsed YAML document or section): unknown and missing
    keys, values of the wrong type or out of their declared range are one ``ConfigError`` each,
    named by their path under ``where``."""
    if not isinstance(mapping, Mapping):
        raise ConfigError(f"{where} must be a mapping of keys to values, got {_short(mapping)}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    hints = _hints(cls)
    for key in mapping:
        if key not in fields:
            raise _unknown_key(str(key), where, list(fields))
    missing = [
        name
        for name, f in fields.items()
        if name not in mapping and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(f"{where} needs {', '.join(repr(m) for m in missing)}")
    values = {key: _read_value(value, hints[key], f"{where}.{key}", fields[key]) for key, value in mapping.items()}
    try:
        return cls(**values)
    except TypeError as err:  # a __post_init__ that received something it cannot take
        raise ConfigError(f"{where}: {err}") from None


def config_dict(obj: Any) -> dict[str, Any]:
    """A config dataclass as plain data (tuples as lists), e.g. for a results header."""

    def plain(value: Any) -> Any:
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, Mapping):
            return {k: plain(v) for k, v in value.items()}
        return value

    return plain(dataclasses.asdict(obj))
