"""Registry of unlearning methods (the timm ``_registry`` pattern).

Each method module registers a function and a settings dataclass holding its published
defaults; ``lethe.unlearn`` looks methods up here, so no code branches on method names.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from lethe.errors import ConfigError

T = TypeVar("T")


@dataclass(frozen=True)
class MethodEntry:
    """One registered method: its function, settings class and what data it needs."""

    name: str
    fn: Callable[..., Any]
    settings_cls: type
    needs_retain: bool
    paper: str
    training_free: bool = False


class Registry(Generic[T]):
    """Name -> item, plus families addressed as ``"family:<argument>"`` (e.g. ``timm:resnet50``).

    Used for methods here and for datasets and model builders in the task packages.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        self._families: dict[str, T] = {}

    def register(self, name: str, *, family: bool = False) -> Callable[[T], T]:
        """Decorator adding an item; ``family=True`` registers the prefix ``name:``."""

        def decorator(item: T) -> T:
            self.add(name, item, family=family)
            return item

        return decorator

    def add(self, name: str, item: T, *, family: bool = False) -> None:
        table = self._families if family else self._items
        if name in table:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        table[name] = item

    def names(self) -> list[str]:
        """Registered names, then families as ``family:<name>``."""
        return sorted(self._items) + [f"{f}:<name>" for f in sorted(self._families)]

    def get(self, spec: str) -> tuple[T, str | None]:
        """``(item, argument)``: the argument is the part after ``family:`` (else None)."""
        if spec in self._items:
            return self._items[spec], None
        family, sep, arg = spec.partition(":")
        if sep and family in self._families and arg:
            return self._families[family], arg
        raise ConfigError(f"unknown {self.kind} {spec!r}; choose from {', '.join(self.names())}")

    def __contains__(self, spec: str) -> bool:
        try:
            self.get(spec)
        except ConfigError:
            return False
        return True


_METHODS: Registry[MethodEntry] = Registry("method")


def register_method(
    name: str, settings: type, *, needs_retain: bool = False, paper: str = "", training_free: bool = False
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator registering an unlearning function under ``name``.

    ``fn(model, settings, ctx) -> (log, extra)`` updates ``model`` in place; ``ctx`` is an
    ``UnlearnContext``. ``needs_retain``: the method reads ``ctx.retain``. ``training_free``:
    it takes no gradient step, so task pipelines give it retained data without augmentation.
    """

    def decorator(fn: Callable[..., Any]) -> Callable[..., Any]:
        _METHODS.add(name, MethodEntry(name, fn, settings, needs_retain, paper, training_free))
        return fn

    return decorator


#: values of a method's ``sample_transform`` setting: whether both sides' samples get the training augmentation
SAMPLE_TRANSFORMS = {"train": True, "plain": False}


def sample_augmentation(name: str, settings: Any) -> tuple[bool, bool]:
    """Whether a task pipeline passes the method's (retained, forget) samples through the training
    augmentation. A ``sample_transform`` setting ("train" or "plain") decides both sides alike;
    without one, gradient methods get it on both sides and training-free ones on the forget side."""
    transform = getattr(settings, "sample_transform", None)
    if transform is None:
        return not get_method(name).training_free, True
    if transform not in SAMPLE_TRANSFORMS:
        raise ConfigError(f"sample_transform must be one of {', '.join(SAMPLE_TRANSFORMS)}, got {transform!r}")
    return SAMPLE_TRANSFORMS[transform], SAMPLE_TRANSFORMS[transform]


def list_methods() -> list[str]:
    """Names of all registered methods, sorted."""
    return _METHODS.names()


def get_method(name: str) -> MethodEntry:
    """The registry entry for ``name``; a ConfigError naming the choices otherwise."""
    return _METHODS.get(name)[0]


def method_settings(name: str, overrides: Mapping[str, Any] | None = None) -> Any:
    """The settings dataclass of ``name`` with its published defaults and ``overrides``.

    String values (from a command line ``--set key=value``) are converted to the field's type.
    """
    cls = get_method(name).settings_cls
    return build_settings(cls, overrides or {}, context=f"method {name!r}")


def build_settings(cls: type, overrides: Mapping[str, Any], context: str = "") -> Any:
    """Instantiate dataclass ``cls`` from ``overrides``, checking names and converting types."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    values = {}
    for key, value in overrides.items():
        if key not in fields:
            raise ConfigError(
                f"{context or cls.__name__} has no setting {key!r}; "
                f"settings are {', '.join(sorted(fields))}"
            )
        values[key] = _convert(value, hints[key], key)
    return cls(**values)


def parse_assignments(items: list[str] | None) -> dict[str, str]:
    """Parse ``["lr=1e-3", "epochs=5"]`` into a dict of strings."""
    result = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"expected KEY=VALUE, got {item!r}")
        result[key.strip()] = value.strip()
    return result


def _convert(value: Any, hint: Any, key: str) -> Any:
    if not isinstance(value, str):
        return value
    origin = typing.get_origin(hint)
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        if value.lower() in ("none", "null", ""):
            return None
        return _convert(value, args[0], key)
    try:
        if hint is bool:
            if value.lower() in ("1", "true", "yes", "on"):
                return True
            if value.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if hint in (int, float, str):
            return hint(value)
        if origin is tuple:
            return tuple(_convert(v, args[0], key) for v in value.split(",") if v)
    except ValueError:
        raise ConfigError(f"setting {key}={value!r} is not a valid {hint}") from None
    return value
