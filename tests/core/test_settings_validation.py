"""Method and relearn settings are validated when built: nonsense is a one-line ConfigError.

Issue 19: ``alpha_r=nan`` for svd wrote a model full of NaN, ``epochs=0`` for delete returned the input
model as "forgotten", ``forget_pixel_weight=-5`` was accepted. Every settings field declares its range
(``lethe._registry.setting``); the property test below throws finite, NaN, infinite, negative, zero
and huge values (as numbers and as command-line strings) at every numeric setting of every method.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import types
import typing

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

import lethe
from lethe._registry import Settings, field_bounds
from lethe.methods.boundary_shrink import BoundaryShrinkSettings
from lethe.methods.delete import DeleteSettings
from lethe.methods.svd import SVDSettings
from lethe.relearn import RelearnSettings

METHODS = lethe.list_methods()
CORE_METHODS = {
    "bad_teacher",
    "boundary_shrink",
    "delete",
    "finetune",
    "gradient_ascent",
    "l1_sparse",
    "neggrad_plus",
    "random_label",
    "retrain",
    "salun",
    "scrub",
    "ssd",
    "svd",
}
#: integer settings where any integer is meaningful (a label value to ignore)
UNBOUNDED = {("delete", "ignore_index")}


def settings_classes() -> dict[str, type]:
    return {**{name: lethe.get_method(name).settings_cls for name in METHODS}, "relearn": RelearnSettings}


def build(name: str, overrides: dict):
    if name == "relearn":
        return lethe.build_settings(RelearnSettings, overrides, "relearn")
    return lethe.method_settings(name, overrides)


def numeric_kind(hint) -> tuple[type | None, bool, bool]:
    """``(int or float or None, optional, list)`` of a field type."""
    optional = False
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        optional, hint = True, args[0]
    is_list = typing.get_origin(hint) is tuple
    if is_list:
        hint = typing.get_args(hint)[0]
    return (hint if hint in (int, float) else None), optional, is_list


def numeric_fields(cls: type) -> dict[str, tuple[dataclasses.Field, type, bool, bool]]:
    hints = typing.get_type_hints(cls)
    found = {}
    for f in dataclasses.fields(cls):
        kind, optional, is_list = numeric_kind(hints[f.name])
        if kind is not None:
            found[f.name] = (f, kind, optional, is_list)
    return found


def test_core_methods_are_all_registered():
    assert set(METHODS) >= CORE_METHODS


@pytest.mark.parametrize("name", [*METHODS, "relearn"])
def test_published_defaults_are_valid(name):
    cls = settings_classes()[name]
    assert issubclass(cls, Settings), f"{name}: settings are not validated (derive from lethe._registry.Settings)"
    assert build(name, {}) == cls()


@pytest.mark.parametrize("name", [*METHODS, "relearn"])
def test_every_numeric_setting_declares_a_range(name):
    cls = settings_classes()[name]
    undeclared = [
        key
        for key, (f, *_rest) in numeric_fields(cls).items()
        if not field_bounds(f).describe() and (name, key) not in UNBOUNDED
    ]
    assert undeclared == [], f"{name}: numeric settings without a declared range: {undeclared}"


#: the shared settings mean the same in every method, so they share a range
SHARED = {
    "epochs": "at least 1",
    "lr": "greater than 0",
    "momentum": "in [0, 1)",
    "weight_decay": "at least 0",
    "temperature": "greater than 0",
    "kd_T": "greater than 0",
}


@pytest.mark.parametrize("name", [*METHODS, "relearn"])
def test_shared_settings_have_the_same_range_everywhere(name):
    for f in dataclasses.fields(settings_classes()[name]):
        if f.name in SHARED and (name, f.name) != ("retrain", "epochs"):  # retrain: 0 re-initialises only
            assert field_bounds(f).describe() == SHARED[f.name], (name, f.name)


FINITE_POSITIVE = "must be a finite number, greater than 0, got"
POSITIVE_LIST = "must be a non-empty comma-separated list of finite numbers, each greater than 0, got"


@pytest.mark.parametrize(
    "name,overrides,message",
    [
        ("svd", {"alpha_r": "nan", "tune": "false"}, f"alpha_r {FINITE_POSITIVE} nan"),
        ("svd", {"alpha_f": "nan", "tune": "false"}, f"alpha_f {FINITE_POSITIVE} nan"),
        ("delete", {"epochs": "0"}, "epochs must be at least 1, got 0"),
        ("delete", {"epochs": -3}, "epochs must be at least 1, got -3"),
        ("delete", {"forget_pixel_weight": "-5"}, "forget_pixel_weight must be greater than 0, got -5.0"),
        ("delete", {"epochs": "1e9"}, "epochs must be an integer, at least 1, got '1e9'"),
        ("delete", {"epochs": 2.5}, "epochs must be an integer, at least 1, got 2.5"),
        ("delete", {"lr": "inf"}, f"lr (learning rate) {FINITE_POSITIVE} inf"),
        ("delete", {"momentum": "1"}, "momentum must be in [0, 1), got 1.0"),
        ("finetune", {"weight_decay": "-1e-4"}, "weight_decay must be at least 0, got -0.0001"),
        ("bad_teacher", {"retain_fraction": "1.5"}, "retain_fraction must be in [0, 1], got 1.5"),
        ("salun", {"threshold": "0"}, "threshold must be in (0, 1], got 0.0"),
        ("ssd", {"dampening": "-inf"}, f"dampening {FINITE_POSITIVE} -inf"),
        (
            "scrub",
            {"lr_decay_epochs": "3,-5"},
            "lr_decay_epochs must be a comma-separated list of integers, each at least 0, got (3, -5)",
        ),
        ("svd", {"grid_r": "10,0"}, f"grid_r {POSITIVE_LIST} (10.0, 0.0)"),
        ("svd", {"grid_f": ""}, f"grid_f {POSITIVE_LIST} ()"),
        ("svd", {"num_forget": "0"}, "num_forget must be at least 1, got 0"),
        ("svd", {"retain_per_class": "x"}, "retain_per_class must be an integer, at least 1, or none, got 'x'"),
        ("svd", {"sample_transform": "none"}, "sample_transform must be one of 'train', 'plain', got 'none'"),
        ("svd", {"tune": "maybe"}, "tune must be true or false, got 'maybe'"),
        ("l1_sparse", {"no_l1_epochs": "11"}, "no_l1_epochs must be in [0, epochs] = [0, 10], got 11"),
        ("retrain", {"epochs": "2", "warmup_epochs": "3"}, "warmup_epochs must be in [0, epochs] = [0, 2], got 3"),
        (
            "boundary_shrink",
            {"pixel_mean": "0.5,0.5", "pixel_std": "0.2"},
            "pixel_mean must be one value per channel, as many as pixel_std=(0.2,), got (0.5, 0.5)",
        ),
        (
            "boundary_shrink",
            {"pixel_mean": "0.5", "pixel_std": "0"},
            "pixel_std must be a comma-separated list of finite numbers, each greater than 0, got (0.0,)",
        ),
        ("relearn", {"steps": "0"}, "steps must be at least 1, got 0"),
        ("relearn", {"threshold": "100"}, "threshold must be in [0, 100), got 100.0"),
    ],
)
def test_reported_nonsense_is_a_one_line_config_error(name, overrides, message):
    """The error names the method, the setting, the value and what is allowed, on one line."""
    with pytest.raises(lethe.ConfigError) as info:
        build(name, overrides)
    label = "RelearnSettings" if name == "relearn" else f"method {name!r}"
    assert str(info.value) == f"{label}: {message}"


def test_settings_built_directly_are_validated_too():
    with pytest.raises(lethe.ConfigError, match="epochs must be at least 1, got 0"):
        DeleteSettings(epochs=0)
    with pytest.raises(lethe.ConfigError, match="alpha_r"):
        dataclasses.replace(SVDSettings(), alpha_r=float("nan"))
    with pytest.raises(lethe.ConfigError, match="pixel_std"):
        BoundaryShrinkSettings(pixel_mean=(0.5,), pixel_std=(-0.2,))
    assert dataclasses.replace(SVDSettings(), retain_per_class=None).retain_per_class is None  # segmentation's use


def test_valid_edge_values_are_accepted():
    assert lethe.method_settings("delete", {"epochs": "1", "momentum": "0", "weight_decay": "0"}).epochs == 1
    assert lethe.method_settings("neggrad_plus", {"alpha": "0"}).alpha == 0.0
    assert lethe.method_settings("neggrad_plus", {"alpha": "1"}).alpha == 1.0
    assert lethe.method_settings("salun", {"threshold": "1"}).threshold == 1.0
    assert lethe.method_settings("l1_sparse", {"epochs": "3", "no_l1_epochs": "3", "alpha": "0"}).no_l1_epochs == 3
    assert lethe.method_settings("svd", {"max_patches": "none", "layers": "a;b"}).layers == ("a;b",)
    assert lethe.method_settings("svd", {"grid_r": [10, 100]}).grid_r == [10, 100]  # a YAML list


@pytest.mark.parametrize(
    "method,overrides", [("svd", {"alpha_r": "nan", "tune": "false"}), ("delete", {"epochs": "0"})]
)
def test_unlearn_refuses_before_touching_the_model(toy, method, overrides):
    with pytest.raises(lethe.ConfigError, match=f"method '{method}'"):
        toy.unlearn(method, [1], overrides=overrides)


# --- property: every numeric setting, every kind of number --------------------------------------

SPECIAL = [
    0,
    -0.0,
    1,
    -1,
    -3,
    0.5,
    1.0,
    100,
    1e-320,
    1e308,
    -1e308,
    10**30,
    10**400,
    float("nan"),
    float("inf"),
    float("-inf"),
]
NUMBERS = st.one_of(
    st.sampled_from(SPECIAL),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**40), max_value=10**40),
)
# a number as it arrives from a command line (``--set key=value``), or as given in Python / YAML
VALUES = st.one_of(NUMBERS, NUMBERS.map(repr), NUMBERS.map(str), st.sampled_from(["none", "1e9", "", "-", "x"]))
LISTS = st.one_of(
    st.lists(NUMBERS, max_size=4).map(tuple), st.lists(NUMBERS, max_size=4).map(lambda v: ",".join(map(str, v)))
)


def in_declared_range(value, kind: type, bounds) -> bool:
    """An independent check of one accepted scalar: the declared type, finite, within the bounds."""
    if kind is int and not (isinstance(value, numbers.Integral) and not isinstance(value, bool)):
        return False
    if kind is float:
        if not isinstance(value, numbers.Real) or isinstance(value, bool):
            return False
        if abs(value) > 1.8e308 or not math.isfinite(value):
            return False
    return (
        (bounds.ge is None or value >= bounds.ge)
        and (bounds.gt is None or value > bounds.gt)
        and (bounds.le is None or value <= bounds.le)
        and (bounds.lt is None or value < bounds.lt)
    )


def check_accepted(name: str, s) -> None:
    for key, (f, kind, optional, is_list) in numeric_fields(type(s)).items():
        value, bounds = getattr(s, key), field_bounds(f)
        if value is None:
            assert optional, (name, key)
        elif is_list:
            assert len(value) >= bounds.min_items, (name, key, value)
            assert all(in_declared_range(v, kind, bounds) for v in value), (name, key, value)
        else:
            assert in_declared_range(value, kind, bounds), (name, key, value)


@st.composite
def overrides_for(draw, name: str) -> dict:
    fields = numeric_fields(settings_classes()[name])
    keys = draw(st.lists(st.sampled_from(sorted(fields)), min_size=1, max_size=3, unique=True))
    return {key: draw(LISTS if fields[key][3] else VALUES) for key in keys}


@pytest.mark.parametrize("name", [*METHODS, "relearn"])
def test_numeric_settings_are_in_range_or_a_config_error(name):
    @hypothesis_settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
    @given(overrides=overrides_for(name))
    def check(overrides):
        try:
            s = build(name, overrides)
        except lethe.ConfigError as error:  # anything else (ValueError, OverflowError, ...) fails the test
            text = str(error)
            assert "\n" not in text
            assert any(key in text for key in overrides), text
            return
        check_accepted(name, s)

    check()
