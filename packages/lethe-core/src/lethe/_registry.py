"""Registry of unlearning methods (the timm ``_registry`` pattern).

Each method module registers a function and a settings dataclass holding its published
defaults; ``lethe.unlearn`` looks methods up here, so no code branches on method names.

Settings dataclasses derive from ``Settings`` and declare each field's allowed values with
``setting(default, ge=..., gt=..., le=..., lt=..., choices=...)``; every instance is checked against
its field types and those ranges when it is built, so a NaN learning rate or zero epochs is a
``ConfigError`` naming the method, the setting, the value and what is allowed.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
import types
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


@dataclass(frozen=True)
class Bounds:
    """The values a setting admits: numeric bounds (``ge``/``gt`` below, ``le``/``lt`` above), a set of
    ``choices``, and for a list setting its fewest entries. Numeric bounds apply to each entry of a
    list; ``None`` is admitted wherever the field's type allows it. ``meaning`` names the setting in
    words for error messages (e.g. "learning rate" for ``lr``)."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    choices: tuple[Any, ...] | None = None
    min_items: int = 0
    meaning: str = ""

    def admits(self, value: Any) -> bool:
        """Whether one (scalar) value lies within the bounds."""
        if self.choices is not None and value not in self.choices:
            return False
        return not (
            (self.ge is not None and not value >= self.ge)
            or (self.gt is not None and not value > self.gt)
            or (self.le is not None and not value <= self.le)
            or (self.lt is not None and not value < self.lt)
        )

    def describe(self) -> str:
        """The range in words: ``"at least 1"``, ``"greater than 0"``, ``"in [0, 1)"``,
        ``"one of 'a', 'b'"``, or ``""`` when unbounded."""
        if self.choices is not None:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        low = ("[", self.ge, "at least") if self.ge is not None else ("(", self.gt, "greater than")
        high = ("]", self.le, "at most") if self.le is not None else (")", self.lt, "less than")
        if low[1] is not None and high[1] is not None:
            return f"in {low[0]}{low[1]:g}, {high[1]:g}{high[0]}"
        for _, bound, words in (low, high):
            if bound is not None:
                return f"{words} {bound:g}"
        return ""


_BOUNDS = "lethe.bounds"


def setting(
    default: Any = dataclasses.MISSING,
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    choices: typing.Iterable[Any] | None = None,
    min_items: int = 0,
    meaning: str = "",
) -> Any:
    """A dataclass field with ``default`` and the range its values must lie in (checked by ``Settings``).

    ``epochs: int = setting(10, ge=1)``, ``momentum: float = setting(0.9, ge=0, lt=1)``,
    ``gram_precision: str = setting("float64", choices=("float64", "float32"))``. Floats must also be
    finite; for a list (tuple) setting the bounds apply to each entry.
    """
    bounds = Bounds(ge, gt, le, lt, None if choices is None else tuple(choices), min_items, meaning)
    return dataclasses.field(default=default, metadata={_BOUNDS: bounds})


def field_bounds(field: dataclasses.Field) -> Bounds:
    """The ``Bounds`` a settings field declares (unbounded when it declares none)."""
    return field.metadata.get(_BOUNDS, Bounds())


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _split_hint(hint: Any) -> tuple[Any, bool]:
    """``(inner type, admits None)`` of ``X | None`` / ``Optional[X]``; ``(hint, False)`` otherwise."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1:
            return args[0], len(args) < len(typing.get_args(hint))
    return hint, False


def _tuple_item(hint: Any) -> Any | None:
    """The entry type of ``tuple[X, ...]`` (``None`` for any other type)."""
    if typing.get_origin(hint) is tuple:
        args = typing.get_args(hint)
        return args[0] if args else Any
    return None


_KINDS = {
    bool: ("true or false", "true or false"),
    int: ("an integer", "integers"),
    float: ("a finite number", "finite numbers"),
    str: ("a string", "strings"),
}


def expected(hint: Any, bounds: Bounds | None = None) -> str:
    """What a field of type ``hint`` within ``bounds`` admits, in words: ``"an integer, at least 1"``,
    ``"a finite number, in [0, 1)"``, ``"a non-empty comma-separated list of finite numbers, each
    greater than 0"``, ``"one of 'train', 'plain'"``, with ``", or none"`` where ``None`` is allowed."""
    bounds = bounds or Bounds()
    inner, optional = _split_hint(hint)
    item = _tuple_item(inner)
    kind = _KINDS.get(item if item is not None else inner)
    if item is not None:
        text = "a non-empty " if bounds.min_items else "a "
        text += f"comma-separated list of {kind[1] if kind else getattr(item, '__name__', item)}"
        if bounds.describe():
            text += f", each {bounds.describe()}"
    elif bounds.choices is not None:
        text = bounds.describe()
    else:
        text = kind[0] if kind else getattr(inner, "__name__", str(inner))
        if bounds.describe():
            text += f", {bounds.describe()}"
    return text + (", or none" if optional else "")


def _typed(value: Any, hint: Any) -> bool:
    """Whether ``value`` has the field type ``hint`` (integers for int, finite numbers for float)."""
    inner, optional = _split_hint(hint)
    if value is None:
        return optional
    item = _tuple_item(inner)
    if item is not None:
        if isinstance(value, str) and item is str:
            return True  # e.g. svd's ``layers``, which also takes one pattern string
        return isinstance(value, (tuple, list)) and all(_typed(v, item) for v in value)
    if inner is bool:
        return isinstance(value, bool)
    if inner is int:
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if inner is float:
        if not isinstance(value, numbers.Real) or isinstance(value, bool):
            return False
        try:
            return math.isfinite(float(value))
        except OverflowError:  # an integer beyond the float range
            return False
    if inner is str:
        return isinstance(value, str)
    return True  # a type without a declared check


def _in_bounds(value: Any, hint: Any, bounds: Bounds) -> bool:
    """Whether a value of the right type (``_typed``) lies within ``bounds`` (each entry of a list)."""
    if value is None or isinstance(value, bool):
        return True
    if isinstance(value, (tuple, list)):
        return len(value) >= bounds.min_items and all(_in_bounds(v, hint, bounds) for v in value)
    if isinstance(value, numbers.Real):
        return bounds.admits(value)
    return bounds.choices is None or value in bounds.choices


def settings_label(cls: type) -> str:
    """``method 'name'`` for a registered method's settings class, else the class name."""
    for entry in _METHODS._items.values():
        if entry.settings_cls is cls:
            return f"method {entry.name!r}"
    return cls.__name__


def invalid_setting(obj: Any, name: str, value: Any, requirement: str, label: str = "") -> ConfigError:
    """The one-line error ``"<method 'x'>: <name> must be <requirement>, got <value>"`` for setting
    ``name`` of ``obj`` (a settings instance or class; ``label`` replaces the method/class label)."""
    cls = obj if isinstance(obj, type) else type(obj)
    fields = {f.name: f for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else {}
    meaning = field_bounds(fields[name]).meaning if name in fields else ""
    about = f"{name} ({meaning})" if meaning else name
    shown = repr(value)
    shown = shown if len(shown) <= 80 else shown[:60] + "..." + shown[-8:]
    return ConfigError(f"{label or settings_label(cls)}: {about} must be {requirement}, got {shown}")


def check_field(obj: Any, field: dataclasses.Field, value: Any, hint: Any) -> None:
    """Raise ``invalid_setting`` unless ``value`` has ``field``'s type and lies in its bounds. A value of
    the right type but out of range names the range alone (``epochs must be at least 1, got 0``)."""
    bounds = field_bounds(field)
    typed = _typed(value, hint)
    if typed and _in_bounds(value, hint, bounds):
        return
    scalar = typed and not isinstance(value, (tuple, list)) and bounds.describe()
    raise invalid_setting(obj, field.name, value, bounds.describe() if scalar else expected(hint, bounds))


def validate_settings(obj: Any) -> None:
    """Check every field of dataclass instance ``obj`` against its type and declared ``Bounds``:
    integers for ``int``, finite numbers for ``float``, the declared range, the allowed choices."""
    hints = _hints(type(obj))
    for f in dataclasses.fields(obj):
        check_field(obj, f, getattr(obj, f.name), hints[f.name])


class Settings:
    """Base class of settings dataclasses: each instance is validated when it is built
    (``validate_settings``). A subclass with constraints between fields overrides
    ``__post_init__``, calls ``super().__post_init__()`` first and raises ``invalid_setting``."""

    def __post_init__(self) -> None:
        validate_settings(self)


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
    """Instantiate dataclass ``cls`` from ``overrides``, checking names and converting types.

    A string that does not convert is a ConfigError saying what the setting expects (e.g.
    ``method 'delete': epochs must be an integer, at least 1, got '1e9'``); ranges are checked by
    the class itself (``Settings``).
    """
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = _hints(cls)
    values = {}
    for key, value in overrides.items():
        if key not in fields:
            raise ConfigError(
                f"{context or cls.__name__} has no setting {key!r}; settings are {', '.join(sorted(fields))}"
            )
        try:
            values[key] = _convert(value, hints[key])
        except ValueError:
            requirement = expected(hints[key], field_bounds(fields[key]))
            raise invalid_setting(cls, key, value, requirement, label=context) from None
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


def _convert(value: Any, hint: Any) -> Any:
    """A command-line string as the field type ``hint`` (other values as they are); ValueError if it
    does not convert."""
    if not isinstance(value, str):
        return value
    inner, optional = _split_hint(hint)
    if optional:
        if value.lower() in ("none", "null", ""):
            return None
        return _convert(value, inner)
    if hint is bool:
        if value.lower() in ("1", "true", "yes", "on"):
            return True
        if value.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(value)
    if hint in (int, float, str):
        return hint(value)
    item = _tuple_item(hint)
    if item is not None:
        return tuple(_convert(v, item) for v in value.split(",") if v)
    return value
